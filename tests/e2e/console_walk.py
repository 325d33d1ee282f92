"""One family case from request to follow-up through the console alone, in Debian's Chromium
driven by Playwright: the regional manager, the coordinator, a professional (the sign-off) and
a researcher each sign in on the development issuer's own page and do their part with the
forms a person would use. Every page is checked with axe-core and kept as a screenshot.

Used by ``test_console.py`` against ``kring run``; ``walk(url, folder)`` runs it against any
running system (``make run``) too.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from shared.assets import assets_dir

CHROMIUM = "/usr/bin/chromium"
#: As root Chromium needs --no-sandbox; the rest keep it from reaching out of this closed
#: network (it stalls otherwise).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-gpu",
    "--lang=nl-NL",  # dates as a Dutch user sees them
]
#: WCAG 2.1 A and AA; a violation of these rated serious or critical fails the page.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
SERIOUS = ("serious", "critical")
WAIT_MS = 20_000
# Assertions wait as long as a page does: Redoc and Swagger UI draw the page in the browser
# after a megabyte of script, which took more than Playwright's five seconds under a loaded CI.
expect.set_options(timeout=WAIT_MS)


@dataclass
class Visit:
    name: str
    url: str
    language: str
    violations: list[dict[str, Any]]


@dataclass
class Walk:
    """What the walk saw: every page checked, every refusal shown, every request refused."""

    base: str
    shots: Path
    visits: list[Visit] = field(default_factory=list)
    #: Requests that left this machine (none may).
    outside: list[str] = field(default_factory=list)
    #: What the browser said about the pages: CSP violations, script errors.
    console_errors: list[str] = field(default_factory=list)
    case_id: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def loopback(self, url: str) -> bool:
        host = urlsplit(url).hostname or ""
        return host in ("127.0.0.1", "localhost", "::1") or url.startswith(("data:", "about:"))


class Person:
    """One browser context, signed in as one person through the issuer's page."""

    def __init__(self, walk: Walk, browser: Browser, who: str) -> None:
        self.walk = walk
        self.who = who
        self.context: BrowserContext = browser.new_context(
            viewport={"width": 1280, "height": 900}, locale="nl-NL"
        )
        # axe-core (vendored) in every page, before its scripts: injected by the browser
        # itself, so the console's policy (no inline script) stays as it is.
        self.context.add_init_script(path=str(assets_dir() / "axe.min.js"))
        self.context.route("**/*", self._only_here)
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.page.on("console", self._said)
        self.page.on("pageerror", lambda error: walk.console_errors.append(f"{who}: {error}"))

    def _only_here(self, route: Any) -> None:
        url = route.request.url
        if self.walk.loopback(url):
            route.continue_()
        else:
            self.walk.outside.append(url)
            route.abort()

    def _said(self, message: Any) -> None:
        # A refusal's status (403, 409) is logged by the browser as a failed load: expected.
        if "Failed to load resource" in message.text:
            return
        if message.type == "error" or "Content Security Policy" in message.text:
            self.walk.console_errors.append(f"{self.who}: {message.text}")

    def sign_in(
        self, name: str, role: str, region: str = "", coordinator: str = "", start: str = "/"
    ) -> None:
        page = self.page
        page.goto(f"{self.walk.base}/login?next={start}")
        expect(page.locator("h1")).to_have_text("Kring development sign-in")
        page.fill("input[name=name]", name)
        page.select_option("select[name=role]", role)
        if region:
            page.fill("input[name=region]", region)
        if coordinator:
            page.fill("input[name=coordinator]", coordinator)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(re.escape(self.walk.base) + ".*"))
        expect(page.locator("header .who")).to_contain_text(name)

    def go(self, path: str) -> Page:
        self.page.goto(self.walk.base + path)
        return self.page

    def check(self, name: str) -> None:
        """axe-core on the page as it is now, and its screenshot."""
        page = self.page
        page.wait_for_load_state()
        language = page.get_attribute("html", "lang") or "?"
        found = page.evaluate(
            """async (tags) => {
                const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
                return result.violations.map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    targets: v.nodes.slice(0, 3).map(n => n.target.join(" ")),
                }));
            }""",
            AXE_TAGS,
        )
        index = len(self.walk.visits) + 1
        # caret="initial": Playwright hides the caret with an inline style otherwise, which
        # the console's policy (rightly) refuses.
        page.screenshot(
            path=str(self.walk.shots / f"{index:02d}-{name}-{language}.png"),
            full_page=True,
            caret="initial",
        )
        self.walk.visits.append(Visit(name, page.url, language, found))

    def submit(self, form: str, button: str | None = None) -> None:
        """Press a form's button (its submit button unless named) and wait for the page the
        console answers with (htmx swaps it in)."""
        locator = self.page.locator(form)
        target = locator.locator(button or "button[type=submit]").last
        # The page answered replaces <main>: until it has, the old one is marked.
        self.page.evaluate("document.querySelector('main').setAttribute('data-old', '1')")
        try:
            with self.page.expect_response(
                lambda r: (
                    r.url.startswith(self.walk.base)
                    and r.request.resource_type in ("document", "xhr", "fetch")
                )
            ):
                target.click()
            self.page.wait_for_selector("main:not([data-old])", state="attached")
        except Exception:
            self.page.screenshot(
                path=str(self.walk.shots / "failed.png"), full_page=True, caret="initial"
            )
            raise
        self.page.wait_for_load_state()

    def notice(self, text: str | None = None) -> None:
        notice = self.page.locator(".notice")
        expect(notice.first).to_be_visible()
        if text:
            expect(notice.first).to_contain_text(text)

    def reload_until(self, path: str, ready: Callable[[Page], bool], seconds: float = 30) -> Page:
        deadline = time.monotonic() + seconds
        while True:
            page = self.go(path)
            if ready(page):
                return page
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} did not show what was awaited within {seconds} s")
            time.sleep(0.3)

    def close(self) -> None:
        self.context.close()


@contextmanager
def chromium() -> Iterator[tuple[Playwright, Browser]]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield playwright, browser
        finally:
            browser.close()


def walk(
    base: str,
    shots: Path,
    region: str = "Utrecht",
    readme: Path | None = None,
    also_managed: tuple[str, ...] = (),
) -> Walk:
    """The whole case. ``readme``: where to put the README's two screenshots (docs/);
    ``also_managed``: more regions the regional manager manages (their cases on the board)."""
    shots.mkdir(parents=True, exist_ok=True)
    done = Walk(base=base.rstrip("/"), shots=shots)
    tag = uuid.uuid4().hex[:6]
    today = date.today()
    with chromium() as (_, browser):
        manager = Person(done, browser, "manager")
        _request(done, manager, region, tag, also_managed)
        coordinator_id = f"coordinator-{tag}"
        _assign(done, manager, region, coordinator_id)
        coordinator = Person(done, browser, "coordinator")
        coordinator.sign_in(f"Coco {tag}", "coordinator", coordinator=coordinator_id, start="/mine")
        _outsider(done, browser, tag)
        ids = _prepare(done, coordinator, today)
        _plan(done, coordinator, ids, today, readme)
        _name_signatory(done, manager, tag)
        professional = Person(done, browser, "professional")
        professional.sign_in(f"Pim {tag}", "professional", region=region)
        _sign_off(done, professional)
        _distribute(done, coordinator)
        researcher = Person(done, browser, "researcher")
        researcher.sign_in(f"Ria {tag}", "researcher", start="/research")
        _follow_up(done, researcher)
        _family_meeting(done, coordinator, today)
        _overview(done, manager, readme)
        _both_languages(done, manager)
        for person in (manager, coordinator, professional, researcher):
            person.close()
    return done


def _request(
    done: Walk, manager: Person, region: str, tag: str, also_managed: tuple[str, ...]
) -> None:
    manager.sign_in(f"Anna {tag}", "regional_manager", region=",".join((region, *also_managed)))
    manager.check("home")
    page = manager.go("/requests/new")
    manager.check("new-request")
    page.fill("#requester_name", "Oma Jansen")
    page.select_option("#requester_relation", "family")
    page.fill("#central_persons", "Johan Jansen")
    page.select_option("#model", "family")
    page.fill("#region", region)
    page.fill("#description", "Johan (8) kan niet meer thuis wonen; oma vraagt om een plan.")
    page.check("input[name=informational_talk]")
    manager.submit("form[action='/requests/new']")
    manager.notice()
    match = re.search(r"/cases/([0-9a-f-]{36})/request", page.url)
    assert match, page.url
    done.case_id = match.group(1)
    manager.check("request")
    page.fill("#q0_text", "Waar kan Johan (8) veilig opgroeien, en wat is daarvoor nodig?")
    page.select_option("#payer", "municipality")
    page.fill("#funding_organisation", "Gemeente Utrecht")
    page.fill("#m0_requirement", "Johan woont niet bij zijn stiefvader.")
    page.fill("#m0_name", "Petra de Vries")
    page.fill("#m0_organisation", "Jeugdbescherming")
    page.fill("#m0_role", "jeugdbeschermer")
    # Petra has no Kring sign-in: her subject is left out, and the regional manager names who
    # signs off in her place once the plan is written (_name_signatory).
    manager.submit("#clarify form")
    manager.notice()
    expect(page.locator("#clarify")).to_contain_text("Johan woont niet bij zijn stiefvader")
    # The talk first: oma wants to go ahead.
    page.select_option("#outcome", "go_ahead")
    manager.submit("#talk")
    manager.notice()
    expect(page.locator("#accept")).to_contain_text("gaat door")
    manager.submit("#accept form[action$='/accept']")
    manager.notice()


def _assign(done: Walk, manager: Person, region: str, coordinator_id: str) -> None:
    case = done.case_id
    # Nobody in the pool yet: the case waits, and the list says why.
    page = manager.reload_until(
        "/unassigned", lambda p: p.locator(f"a[href='/cases/{case}']").count() > 0
    )
    row = page.locator("tr", has=page.locator(f"a[href='/cases/{case}']"))
    done.facts["waiting_reason"] = row.locator("td").nth(4).inner_text()
    manager.check("unassigned")
    page = manager.go("/pool")
    page.fill("#coordinator_id", coordinator_id)
    page.fill("#regions", region)
    page.fill("#languages", "en")  # speaks English only: a mismatch for a Dutch-speaking family
    page.fill("#capacity", "3")
    manager.submit("#register form")
    manager.notice()
    expect(page.locator("table")).to_contain_text(coordinator_id)
    manager.check("pool")
    page = manager.go(f"/cases/{case}/assign")
    page.check(f"input[name=coordinator][value='{coordinator_id}']")
    manager.submit("#choose form[method=get]")
    check = page.locator("#check")
    expect(check).to_contain_text(f"{coordinator_id} does not speak nl")
    done.facts["mismatch_shown"] = check.inner_text()
    manager.check("assign-check")
    page.fill("#assign-reason", "Spreekt de taal van de vader; het gezin vindt dat goed.")
    manager.submit("#check form")
    manager.notice()


def _outsider(done: Walk, browser: Browser, tag: str) -> None:
    """Another coordinator cannot open this case."""
    other = Person(done, browser, "other coordinator")
    other.sign_in(f"Olga {tag}", "coordinator", coordinator=f"other-{tag}")
    page = other.go(f"/cases/{done.case_id}/preparation")
    expect(page.locator("h1")).to_contain_text("U mag dit niet zien of doen")
    done.facts["outsider_refusal"] = page.locator(".problem").inner_text()
    done.facts["outsider_status"] = page.evaluate("document.readyState")
    other.check("outsider-refused")
    page = other.go(f"/cases/{done.case_id}/plan")
    expect(page.locator("h1")).to_contain_text("U mag dit niet zien of doen")
    other.close()


PEOPLE = (
    ("Johan Jansen", "central_person", "", True),
    ("Oma Jansen", "family", "", True),
    ("Piet Bakker", "network", "", True),
    ("Sanne Visser", "professional", "Jeugdzorg Utrecht", True),
    ("Tante Els", "family", "", False),
)


def _prepare(done: Walk, coordinator: Person, today: date) -> dict[str, str]:
    case = done.case_id
    page = coordinator.go("/mine")
    expect(page.locator("table")).to_contain_text(case[:8])
    coordinator.check("mine")
    page = coordinator.go(f"/cases/{case}/preparation")
    coordinator.submit("#contact")
    coordinator.notice()
    for name, role, organisation, _ in PEOPLE:
        page.fill("#p-name", name)
        page.select_option("#p-role", role)
        page.fill("#p-organisation", organisation)
        coordinator.submit("#invite")
        coordinator.notice()
    rows = page.locator("#participants tbody tr")
    expect(rows).to_have_count(len(PEOPLE))
    ids = {}
    for index, (name, _, _, comes) in enumerate(PEOPLE):
        pid = rows.nth(index).locator("td").first.inner_text().split(" ")[0]
        ids[name] = pid
        row = page.locator("#participants tbody tr").nth(index)
        if comes:
            row.locator("input[name=share_details]").check()
            coordinator.submit(
                f"#participants tbody tr:nth-child({index + 1}) form[action$='/confirm']"
            )
            coordinator.notice()
            # Informed of the aim and the way of working: the conference waits for everyone.
            coordinator.submit(
                f"#participants tbody tr:nth-child({index + 1}) form[action$='/informed']"
            )
            expect(page.locator("#participants tbody tr").nth(index)).to_contain_text(
                "Geïnformeerd op"
            )
        else:
            coordinator.submit(
                f"#participants tbody tr:nth-child({index + 1}) form[action$='/decline']"
            )
        coordinator.notice()
    declined = page.locator("#participants tbody tr").nth(len(PEOPLE) - 1)
    expect(declined).to_contain_text("definitief")
    expect(declined.locator("form")).to_have_count(0)  # nobody presses them again
    page.fill("#topic", "Het schoolrapport van Johan")
    page.select_option("#brought_by", ids["Sanne Visser"])
    coordinator.submit("#information form")
    coordinator.notice()
    page.fill("#a-date", today.isoformat())
    page.fill("#a-venue", "Buurthuis De Kring")
    page.fill("#a-food", "Soep en broodjes")
    coordinator.submit("#arrangements form")
    coordinator.notice()
    page.fill("#s-on", today.isoformat())
    coordinator.submit("#schedule form")
    coordinator.notice()
    coordinator.check("preparation")
    # The model's rules are on the form before anything is refused.
    rules = page.locator("#model-rules")
    expect(rules).to_contain_text("besloten familietijd")
    # The professional stays for private family time: coordination refuses, the form says why.
    part_two = page.locator("#conference fieldset").nth(1)
    part_two.locator(f"input[value='{ids['Sanne Visser']}']").check()
    coordinator.submit("#conference form")
    problem = page.locator("#problem-conference")
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("private family time")
    done.facts["refusal"] = problem.inner_text()
    expect(
        page.locator("#conference fieldset").nth(1).locator(f"input[value='{ids['Sanne Visser']}']")
    ).to_be_checked()  # the form as it was sent
    coordinator.check("conference-refused")
    page.locator("#conference fieldset").nth(1).locator(
        f"input[value='{ids['Sanne Visser']}']"
    ).uncheck()
    coordinator.submit("#conference form")
    coordinator.notice()
    expect(page.locator("section").first).to_contain_text("conferentie gehouden")
    return ids


def _plan(
    done: Walk, coordinator: Person, ids: dict[str, str], today: date, readme: Path | None
) -> None:
    case = done.case_id
    page = coordinator.reload_until(
        f"/cases/{case}/plan", lambda p: p.locator("#recipients table").count() > 0
    )
    people = [n for n, _, _, comes in PEOPLE if comes]
    for name in people:
        pid = ids[name]
        page.fill(f"#r-{pid}-name", name)
    coordinator.submit("#recipients form")
    coordinator.notice()
    expect(page.locator("#questions")).to_contain_text("q1")  # intake's, as clarified
    page.check(f"input[name=a0_who][value='{ids['Oma Jansen']}']")
    page.check(f"input[name=a0_who][value='{ids['Johan Jansen']}']")
    page.check("input[name=a0_answers][value=q1]")  # it answers the question asked
    page.fill("#a0_what", "Johan woont bij oma.")
    page.fill("#a0_where", "Utrecht")
    page.check("input[name=a0_when][value=recurring]")
    page.fill("#a0_recurring", "elke dag")
    coordinator.submit("#write form", "button[name=more]:text('afspraak')")
    page.check(f"input[name=a1_who][value='{ids['Piet Bakker']}']")
    page.fill("#a1_what", "Piet brengt Johan op maandag naar school.")
    page.check("input[name=a1_when][value=on]")
    page.fill("#a1_on", (today + timedelta(days=7)).isoformat())
    page.fill("#if_something_does_not_work", "Oma belt Piet; samen bellen zij de coördinator.")
    page.select_option("#watched_by", ids["Piet Bakker"])
    page.fill("#next_meeting_on", (today + timedelta(days=60)).isoformat())
    page.fill("#s0_organisation", "Jeugdzorg Utrecht")
    page.fill("#s0_what", "Een gezinscoach, eens per week.")
    coordinator.submit("#write form", "button:not([name=more])")
    coordinator.notice()
    # The version kept which question the first agreement answers (the editor shows it again).
    expect(page.locator("input[name=a0_answers][value=q1]")).to_be_checked()
    # A second version: one agreement changed, one added.
    page.fill("#a1_what", "Piet brengt Johan op maandag en woensdag naar school.")
    page.check(f"input[name=a2_who][value='{ids['Oma Jansen']}']")
    page.fill("#a2_what", "Oma gaat elke maand naar het oudercafé.")
    page.check("input[name=a2_when][value=recurring]")
    page.fill("#a2_recurring", "elke eerste dinsdag")
    coordinator.submit("#write form", "button:not([name=more])")
    coordinator.notice()
    versions = page.locator("#versions")
    expect(versions).to_contain_text("Versie 2")
    expect(versions).to_contain_text("gewijzigd")
    expect(versions).to_contain_text("toegevoegd")
    coordinator.check("plan-editor")
    if readme is not None:
        page.evaluate("document.getElementById('write').scrollIntoView({block: 'start'})")
        page.screenshot(path=str(readme / "console-plan-editor.png"), caret="initial")
    coordinator.submit("#accept form")
    coordinator.notice()


def _name_signatory(done: Walk, manager: Person, tag: str) -> None:
    """Nobody may sign the requirement off until the regional manager names who does in the
    place of Petra, who set it: Pim, with why (recorded)."""
    page = manager.go(f"/cases/{done.case_id}/plan")
    requirement = page.locator("#requirement-m1")
    expect(requirement).to_contain_text("Nog niemand kan deze eis toetsen")
    requirement.locator("summary").click()
    page.fill("#sig-m1-subject", f"Pim {tag}")
    page.fill("#sig-m1-name", "Pim Jansen")
    page.fill("#sig-m1-reason", "Petra de Vries heeft geen Kring-account; Pim is haar collega.")
    manager.check("signatory")
    manager.submit("#requirement-m1 form")
    manager.notice()
    expect(page.locator("#requirement-m1")).to_contain_text("Toetst: Pim Jansen")


def _sign_off(done: Walk, professional: Person) -> None:
    page = professional.go(f"/cases/{done.case_id}/plan")
    expect(page.locator("#sign-off")).to_be_visible()
    professional.check("sign-off")
    professional.submit("#sign-off form")
    professional.notice()
    expect(page.locator("section").first).to_contain_text("voldoet aan de minimumeis")


def _distribute(done: Walk, coordinator: Person) -> None:
    page = coordinator.go(f"/cases/{done.case_id}/plan")
    # Shared with no organisation: only registered partners may be named (none here).
    coordinator.submit("#distribute form")
    coordinator.notice()
    deliveries = page.locator("#deliveries tbody tr")
    expect(deliveries.first).to_be_visible()
    count = deliveries.count()
    done.facts["copies"] = count
    # Every copy goes by hand here: record each handed over.
    for _ in range(count):
        if page.locator("#handover").count() == 0:
            break
        page.select_option("#h-channel", "by_hand")
        coordinator.submit("#handover")
        coordinator.notice()
    expect(page.locator("#deliveries")).not_to_contain_text("wacht op verzending")
    coordinator.check("distributed")


def _follow_up(done: Walk, researcher: Person) -> None:
    case = done.case_id
    page = researcher.reload_until(
        "/research", lambda p: p.locator(f"a[href='/cases/{case}/follow-up']").count() > 0
    )
    researcher.check("research")
    page = researcher.reload_until(
        f"/cases/{case}/follow-up",
        lambda p: p.locator("#timer_id option[value^=research]").count() > 0,
        seconds=60,
    )
    page.select_option(
        "#timer_id", page.locator("#timer_id option[value^=research]").first.get_attribute("value")
    )
    agreements = page.locator("#outcome select[id^=o_]")
    outcomes = ["kept", "partly_kept", "not_kept"]
    for index in range(agreements.count()):
        agreements.nth(index).select_option(outcomes[index % 3])
    researcher.check("follow-up")
    researcher.submit("#outcome form")
    researcher.notice()
    expect(page.locator("#outcomes")).to_contain_text("deels nagekomen")
    # The marks the two people asked gave, by group; never who.
    contact = page.locator("#rating_timer_id option[value^=research]").first
    page.select_option("#rating_timer_id", contact.get_attribute("value"))
    page.select_option("#r0_by", "family_network")
    page.fill("#r0_meeting", "8")
    page.fill("#r0_plan", "7")
    page.select_option("#r1_by", "professional")
    page.fill("#r1_meeting", "9")
    researcher.check("ratings")
    researcher.submit("#ratings form")
    researcher.notice()
    marks = page.locator("#ratings table").first
    expect(marks).to_contain_text("familie en netwerk")
    expect(marks).to_contain_text("9")


def _family_meeting(done: Walk, coordinator: Person, today: date) -> None:
    """The family met again before the day the plan named: the coordinator records it held,
    how each agreement went, and when they meet next."""
    page = coordinator.go(f"/cases/{done.case_id}/follow-up")
    expect(page.locator("#meetings form")).to_be_visible()
    page.fill("#held_on", today.isoformat())
    agreements = page.locator("#meetings select[id^=m_]")
    for index in range(agreements.count()):
        agreements.nth(index).select_option("kept")
    page.fill("#again_on", (today + timedelta(days=90)).isoformat())
    coordinator.check("family-meeting")
    coordinator.submit("#meetings form")
    coordinator.notice()
    meetings = page.locator("#meetings")
    expect(meetings).to_contain_text(f"Gehouden op {today.isoformat()}")
    expect(meetings).to_contain_text("nagekomen")


def _overview(done: Walk, manager: Person, readme: Path | None) -> None:
    case = done.case_id
    page = manager.go("/board")
    expect(page.locator("#cases")).to_contain_text(case[:8])
    manager.check("board")
    if readme is not None:
        page.screenshot(path=str(readme / "console-case-board.png"), caret="initial")
    # The filter answers in place (htmx), and shows the stage it names.
    with page.expect_response(lambda r: "/board?" in r.url):
        page.select_option("#f-stage", "submitted")
    expect(page.locator("#cases")).not_to_contain_text(case[:8])
    for name, path in (
        ("case", f"/cases/{case}"),
        ("timeline", f"/cases/{case}/timeline"),
        ("access-log", f"/cases/{case}/access-log"),
    ):
        manager.go(path)
        manager.check(name)
    timeline = manager.go(f"/cases/{case}/timeline").locator("table").inner_text()
    for event in ("Submitted", "CoordinatorAssigned", "ConferenceHeld", "Written", "Distributed"):
        assert event in timeline, event
    log = manager.go(f"/cases/{case}/access-log").locator("table").inner_text()
    assert "Coco" in log and "Ria" in log, log


def _both_languages(done: Walk, manager: Person) -> None:
    case = done.case_id
    page = manager.go("/board")
    page.click("header a[hreflang=en]")
    page.wait_for_load_state()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    for name, path, english in (
        ("board", "/board", "Case board"),
        ("request", f"/cases/{case}/request", "Conference questions"),
        ("assign", f"/cases/{case}/assign", "Assign or reassign by hand"),
        ("preparation", f"/cases/{case}/preparation", "Participants"),
        ("plan", f"/cases/{case}/plan", "Versions, and what changed"),
        ("follow-up", f"/cases/{case}/follow-up", "Contacts"),
        ("pool", "/pool", "The pool"),
        ("requests", "/requests", "New requests"),
        ("unassigned", "/unassigned", "Cases waiting for a coordinator"),
        ("research", "/research", "Follow-ups"),
    ):
        page = manager.go(path)
        expect(page.locator("main")).to_contain_text(english)
        manager.check(name)
    page.click("header a[hreflang=nl]")
    page.wait_for_load_state()
    expect(page.locator("html")).to_have_attribute("lang", "nl")


def serious(visits: list[Visit]) -> list[str]:
    return [
        f"{v.name} ({v.language}): {x['id']} {x['impact']} {x['help']} {x['targets']}"
        for v in visits
        for x in v.violations
        if x["impact"] in SERIOUS
    ]


if __name__ == "__main__":  # python -m tests.e2e.console_walk http://127.0.0.1:8000
    import sys

    result = walk(sys.argv[1], Path(os.environ.get("SHOTS", "/tmp/console-shots")))
    print("case", result.case_id, "pages", len(result.visits))
    print("\n".join(serious(result.visits)) or "no serious violations")
    print(result.outside, result.console_errors)
