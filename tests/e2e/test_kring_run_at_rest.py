"""``kring run`` as a user gets it (nats-server and the four service processes, real stores): each
service's store under a key of its own and the data folder private; a service killed with -9
comes back by itself and a case then completes; and after ``kring erase`` no file under the data
folder (every store, WAL and shared memory included, NATS's store, the logs) holds the erased
case's key, or that of its follow-up case, in any form it is kept in, or a name entered for
either."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import time
import uuid
from base64 import b64decode
from contextlib import closing
from typing import Any

import httpx
import psutil

from kring import scenarios, workflow
from shared.cipher import AESGCMCipher
from shared.events import ConferenceModel
from tests.e2e.conftest import SERVICES, System
from tests.harness import eventually
from tests.rawbytes import files_holding, key_forms, scanned, stored_case_key, text_forms

#: Shorter names turn up by chance in a few megabytes of ciphertext.
SHORTEST_NAME = 5


def service_key(system: System, service: str) -> str:
    return (system.data / "keys" / f"{service}.key").read_text().strip()


def service_process(system: System, service: str) -> psutil.Process | None:
    module = f"services.{service}.main"
    for child in psutil.Process(system.runner.pid).children(recursive=True):
        try:
            if module in child.cmdline():
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def ready(system: System, service: str) -> bool:
    try:
        return httpx.get(f"{system.urls[service]}/health/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


async def run_case(
    system: System, model: ConferenceModel, **options: Any
) -> tuple[workflow.CaseRun, str]:
    """One case of ``model`` through the workflow, in a region of its own: (the run, the region)."""
    region = f"REST-{model.value}-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient() as http:
        session = workflow.Session(http, system.tokens)
        await workflow.join_pool(session, urls=system.urls, region=region)
        run = await workflow.run_case(
            session, model, urls=system.urls, region=region, key=f"rest-{uuid.uuid4()}", **options
        )
    return run, region


def test_each_service_has_a_key_of_its_own_and_the_data_folder_is_private(
    system: System,
) -> None:
    keys = {service: service_key(system, service) for service in SERVICES}
    assert len(set(keys.values())) == len(SERVICES)
    for service, key in keys.items():
        assert len(b64decode(key)) == 32
        # The store records a check under its own key: its key opens it, another's does not.
        with closing(sqlite3.connect(system.data / f"{service}.sqlite")) as db:
            [(check,)] = db.execute(
                f"SELECT value FROM {service}_store WHERE name = 'cipher'"
            ).fetchall()
        sealed = b64decode(check.removeprefix("check:"))
        AESGCMCipher.of_key(key).decrypt(sealed)
        other = next(k for s, k in keys.items() if s != service)
        try:
            AESGCMCipher.of_key(other).decrypt(sealed)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{service}'s store opens with another service's key")
    log = system.log_path.read_text()
    for service in SERVICES:
        assert f'"service": "{service}"' in log
    assert '"cipher_key": null' not in log and '"cipher_key": "***"' in log

    for path in [system.data, *system.data.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path.relative_to(system.data)} is {oct(mode)}"


async def test_a_service_killed_with_9_comes_back_by_itself_and_a_case_completes(
    system: System,
) -> None:
    killed = service_process(system, "coordination")
    assert killed is not None
    killed.kill()  # -9
    run = asyncio.create_task(run_case(system, ConferenceModel.GROUP, patience=90))

    def said(line: str) -> bool:
        return line in system.log_path.read_text()

    async def back() -> bool:
        again = service_process(system, "coordination")
        return again is not None and again.pid != killed.pid and ready(system, "coordination")

    await eventually(back, timeout=60, what="coordination to be started again", interval=0.2)
    assert said("coordination exited after ") and said("with exit code -9 (SIGKILL)")
    assert said("starting it again in 1 s") or said("starting it again in 2 s")
    assert said("coordination started again")
    assert system.runner.poll() is None  # nothing else was stopped
    case, _ = await run
    assert case.steps["follow_up_scheduled"] > 0


async def test_after_kring_erase_no_file_under_the_data_folder_holds_its_keys_or_names(
    system: System,
) -> None:
    family = scenarios.SCENARIOS[ConferenceModel.FAMILY]
    erased, region = await run_case(
        system, ConferenceModel.FAMILY, patience=90, through_follow_up=True
    )
    kept, _ = await run_case(system, ConferenceModel.RESTORATIVE, patience=90)
    follow_up = erased.follow_up_case_id
    assert follow_up is not None
    # The follow-up case goes on: accepted, assigned, and a new name entered for it.
    newcomer = f"Zephyrine Oostveen {uuid.uuid4().hex[:6]}"
    manager = workflow.manager(region)
    async with httpx.AsyncClient() as http:
        session = workflow.Session(http, system.tokens)
        intake = f"{system.urls['intake']}/cases/{follow_up}"
        body = scenarios.clarification_body(family)
        await workflow.call(session, "POST", f"{intake}/clarify", manager, body)
        await workflow.accept(session, intake, manager)
        coordination = f"{system.urls['coordination']}/cases/{follow_up}"
        case = await workflow.until(
            session, coordination, manager, lambda c: bool(c.get("coordinator_ids")), 60
        )
        coordinator = workflow.coordinator(case["coordinator_ids"][0])
        await workflow.call(session, "POST", f"{coordination}/contact", coordinator)
        person = scenarios.Person("newcomer", newcomer, "network", email="zephyrine@example.org")
        participant = scenarios.participant_body(person)
        await workflow.call(
            session, "POST", f"{coordination}/participants", coordinator, participant
        )

    def stores_of(case_id: str) -> list[str]:
        holding = []
        for service in SERVICES:
            try:
                stored_case_key(system.data / f"{service}.sqlite", service, case_id)
            except AssertionError:
                continue
            holding.append(service)
        return holding

    keys: dict[str, list[bytes]] = {}
    for case_id in (erased.case_id, follow_up, kept.case_id):
        for service in stores_of(case_id):
            stored = stored_case_key(system.data / f"{service}.sqlite", service, case_id)
            keys[f"{service}:{case_id}"] = key_forms(stored, service_key(system, service))
    assert {k.split(":")[0] for k in keys if k.endswith(erased.case_id)} == set(SERVICES)
    assert {"intake", "coordination"} <= {k.split(":")[0] for k in keys if k.endswith(follow_up)}
    others = {p.name for m, s in scenarios.SCENARIOS.items() if m != family.model for p in s.people}
    entered = [
        *(p.name for p in family.people if p.name not in others),
        *(p.email for p in family.people if p.email),
        family.requester["name"],
        newcomer,
        "zephyrine@example.org",
        "supervision order",
    ]
    names = {name: text_forms(name) for name in entered if name and len(name) >= SHORTEST_NAME}
    before = files_holding(system.data, keys)
    assert f"intake:{erased.case_id}" in before, "the scan would not find a key: it proves nothing"

    result = system.kring("erase", erased.case_id, "--reason", "requested_by_person", who=manager)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"erased follow-up case {follow_up} with it" in result.stdout

    gone = {k for k in keys if not k.endswith(kept.case_id)}

    async def nothing_left() -> bool:  # each service empties its WAL right after its shred
        return not gone & set(files_holding(system.data, keys))

    started = time.monotonic()
    await eventually(nothing_left, timeout=30, what="no file to hold the keys", interval=0.5)
    left = files_holding(system.data, keys)
    assert {k for k in left if k.endswith(kept.case_id)}, "a standing key is no longer found"
    assert files_holding(system.data, names) == {}
    # The same scan reads text where it is: the case's id (no personal data) is in the logs.
    assert "logs/intake.log" in files_holding(system.data, {"id": text_forms(erased.case_id)})["id"]
    files = scanned(system.data)
    print(
        f"\nscanned {len(files)} files under the data folder "
        f"({time.monotonic() - started:.1f} s after kring erase returned), for "
        f"{len(gone)} shredded case keys ({sum(len(keys[k]) for k in gone)} forms) and "
        f"{len(names)} names:\n  " + "\n  ".join(files)
    )
    for service in SERVICES:
        for case_id in (erased.case_id, follow_up):
            response = httpx.get(
                f"{system.urls[service]}/cases/{case_id}",
                headers=system.headers(manager),
                timeout=10,
            )
            assert response.status_code in (404, 410), (service, case_id, response.status_code)
