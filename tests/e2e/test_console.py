"""The console in a real browser (Debian's Chromium, driven by Playwright) against ``kring run``:
one family case from request to follow-up through the console alone, as the people whose steps
they are, each signing in on the development issuer's page; every page checked with axe-core
and kept as a screenshot; and each service's ``/docs`` and ``/redoc`` working with nothing
fetched from outside this machine.

The screenshots are kept in ``KRING_TEST_ARTIFACTS`` (default ``test-artifacts/``)/console; the
test prints where. With ``KRING_TEST_README_SHOTS=1`` the case board and the plan editor are
also written to ``docs/`` for the README.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SERVICES, System
from tests.e2e.console_walk import Person, Walk, chromium, serious, walk

ROOT = Path(__file__).resolve().parents[2]


def artefacts(name: str) -> Path:
    folder = Path(os.environ.get("KRING_TEST_ARTIFACTS", ROOT / "test-artifacts")) / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.mark.timeout(420)
def test_a_family_case_runs_from_request_to_follow_up_through_the_console_alone(
    system: System, capsys: pytest.CaptureFixture[str]
) -> None:
    shots = artefacts("console")
    readme = ROOT / "docs" if os.environ.get("KRING_TEST_README_SHOTS") else None
    also: tuple[str, ...] = ()
    if readme is not None:
        # The README's board shows the manager's regions at work: other cases, of a region
        # whose pool `kring demo` fills, at other stages beside ours.
        also = ("Amersfoort",)
        for model in ("group", "restorative", "learning_circle"):
            demo = system.kring("demo", "--model", model, "--region", also[0], "--timeout", "60")
            assert demo.returncode == 0, demo.stderr
    done = walk(system.console_url, shots, readme=readme, also_managed=also)
    with capsys.disabled():
        print(f"\nconsole screenshots ({len(done.visits)} pages): {shots}")

    # Every page in the walk, in both languages, with no serious or critical violation.
    assert serious(done.visits) == []
    named = {v.name for v in done.visits}
    for page in ("board", "request", "assign-check", "preparation", "plan-editor", "follow-up"):
        assert page in named
    assert {v.language for v in done.visits} == {"nl", "en"}
    assert len(list(shots.glob("*.png"))) == len(done.visits)
    # Nothing left the machine; the pages ran under their policy without a violation.
    assert done.outside == []
    assert done.console_errors == []
    # What a person was shown on the way.
    assert "does not speak nl" in done.facts["mismatch_shown"]
    assert done.facts["waiting_reason"].strip() not in ("", "—")
    assert "private family time" in done.facts["refusal"]
    assert "assigned to this case" in done.facts["outsider_refusal"]
    assert done.facts["copies"] >= 4

    # Nothing a person typed about the family reached a log: the console's or a service's.
    typed = ["Johan Jansen", "Oma Jansen", "Piet Bakker", "Sanne Visser", "Tante Els"]
    typed += ["Johan (8) kan niet meer thuis wonen", "Johan woont bij oma", "Buurthuis De Kring"]
    logs = sorted((system.data / "logs").glob("*.log"))
    assert "console.log" in [log.name for log in logs]
    for log in logs:
        text = log.read_text(encoding="utf-8", errors="replace")
        assert [t for t in typed if t in text] == [], log.name

    # The services agree with what the console showed: the case went all the way.
    views = system.kring("case", done.case_id, "--json", who=_manager())
    assert views.returncode == 0, views.stderr
    assert '"followed_up"' in views.stdout or '"follow_up_due"' in views.stdout
    assert "plan_distributed" in views.stdout


def _manager():  # the region's manager, as the CLI signs in
    from kring.workflow import manager

    return manager("Utrecht")


@pytest.mark.timeout(120)
def test_every_service_s_docs_work_without_the_internet(system: System) -> None:
    walk_ = Walk(base=system.console_url, shots=artefacts("docs"))
    with chromium() as (_, browser):
        person = Person(walk_, browser, "reader")
        for service in SERVICES:
            page = person.page
            page.goto(f"{system.urls[service]}/docs")
            expect(page.locator(".opblock").first).to_be_visible()
            expect(page.locator(".info .title")).to_contain_text(f"Kring {service}")
            page.screenshot(path=str(walk_.shots / f"{service}-docs.png"), caret="initial")
            page.goto(f"{system.urls[service]}/redoc")
            expect(page.locator("h1").first).to_contain_text(f"Kring {service}")
            expect(page.locator("[role=menuitem]").first).to_be_visible()
            page.screenshot(path=str(walk_.shots / f"{service}-redoc.png"), caret="initial")
        person.close()
    # Every script, style and font came from the service itself. Redoc's side menu always
    # shows its maker's logo from their CDN (it has no setting to leave it out): the pages'
    # policy refuses it, Redoc then hides the image, and nothing else is refused.
    assert walk_.outside == []
    badge = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [e for e in walk_.console_errors if badge not in e] == []
