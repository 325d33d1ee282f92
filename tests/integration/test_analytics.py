"""``kring export`` and ``kring report`` on a real stream: the hand-counted scenario of
``tests/analytics_scenario.py`` published as the relays publish, exported and reported.

Each test has the stream to itself (a nats-server of this module's own, closed as Kring's is,
the stream made anew); the export and the report read it as the ``analyst`` identity."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from PIL import Image

from kring.analytics.export import (
    KEY_FILE,
    ExportFormat,
    ExportRequest,
    Target,
    export,
    read_key,
)
from kring.analytics.figures import GroupBy
from kring.analytics.report import ReportRequest, make_report
from kring.analytics.tables import SCHEMAS
from kring.client import connect_nats
from shared.bus import ensure_streams
from shared.envelope import encode, message_headers
from shared.events import CaseErased, IntegrationEvent
from shared.permissions import ADMIN, ANALYST, SERVICES
from shared.subjects import STREAM
from tests.analytics_scenario import ORGANISATIONS, Scenario, scenario
from tests.servers import NatsServer

TABLES = ("cases", "stage_times", "events", "attendance", "outcomes", "ratings")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    running = NatsServer(tmp_path_factory.mktemp("analytics-nats")).start()
    yield running
    running.stop()


@dataclass
class Bus:
    """The module's server as Kring uses it: the relays publish as their services, admin makes
    and deletes the stream, the export and the report read as the analyst (direct get only)."""

    server: NatsServer
    analyst: Client
    admin: Client
    origins: dict[str, Client]

    async def fresh_stream(self) -> None:
        js = self.admin.jetstream()
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(STREAM)
        await ensure_streams(js)


@pytest.fixture
async def bus(server: NatsServer) -> AsyncIterator[Bus]:
    admin = await server.connect(ADMIN)
    origins = {name: await server.connect(name) for name in SERVICES}
    analyst = await connect_nats(server.url, ANALYST, password=server.password(ANALYST))
    made = Bus(server, analyst, admin, origins)
    await made.fresh_stream()
    yield made
    for client in [analyst, admin, *origins.values()]:
        await client.close()
    # The export and the report did only what the analyst may (no consumer, no publish).
    assert server.violations() == []


async def publish(bus: Bus, items: list[tuple[IntegrationEvent, datetime, str, int]]) -> None:
    """As a relay publishes: each event by its origin, under its origin and position. A
    re-published copy gets a message id of its own (as after the server's duplicate window) and
    so lands twice."""
    for event, moment, origin, position in items:
        payload = encode(event, origin=origin, position=position, time=moment)
        msg_id = f"{origin}:{position}:{uuid.uuid4().hex[:8]}"
        headers = message_headers(origin, position) | {"Nats-Msg-Id": msg_id}
        await bus.origins[origin].jetstream().publish(event.subject(), payload, headers=headers)


def relayed(known: Scenario) -> list[tuple[IntegrationEvent, datetime, str, int]]:
    return [
        (event, moment, one.origin, one.position)
        for (event, moment), one in zip(known.items, known.delivered(), strict=True)
    ]


async def publish_scenario(bus: Bus, known: Scenario) -> None:
    await publish(bus, relayed(known))
    await bus.origins["intake"].jetstream().publish("kring.intake.request-submitted", b"{not json")


def pseudonym(key: bytes, case_id: uuid.UUID) -> str:
    return hmac.new(key, case_id.bytes, hashlib.sha256).hexdigest()[:32]


def read_table(root: Path, name: str, file_format: str = "parquet") -> pa.Table:
    chosen: Any = file_format
    if file_format == "csv":  # CSV says nothing of its types: read as the export wrote them
        types = {f.name: f.type for f in SCHEMAS[name] if f.name != "month"}
        chosen = ds.CsvFileFormat(convert_options=pa_csv.ConvertOptions(column_types=types))
    dataset = ds.dataset(root / "current" / name, format=chosen, partitioning="hive")
    return dataset.to_table()


def rows(table: pa.Table, *columns: str) -> list[tuple[Any, ...]]:
    found = table.select(list(columns)).to_pylist()
    return sorted((tuple(row[c] for c in columns) for row in found), key=repr)


def every_byte(root: Path) -> list[tuple[Path, bytes]]:
    """Every file of the target but its key."""
    return [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file() and p.name != KEY_FILE]


async def test_an_export_gives_the_hand_counted_tables_and_no_live_id_or_organisation(
    bus: Bus, tmp_path: Path
) -> None:
    known = scenario()
    await publish_scenario(bus, known)
    target = tmp_path / "export"
    result = await export(bus.analyst, ExportRequest(target=target))
    key = read_key(target / KEY_FILE)
    ids = {name: pseudonym(key, case_id) for name, case_id in known.ids.items()}

    assert (result.cases, result.erased_now, result.duplicates) == (12, 1, 1)
    assert result.undecodable == {"invalid-envelope": 1} or result.undecodable == {
        "malformed-json": 1
    }
    cases = read_table(target, "cases")
    assert set(cases["case_pseudonym"].to_pylist()) == {ids[n] for n in "ABCDEFGHIJKL"}
    by_case = {row["case_pseudonym"]: row for row in cases.to_pylist()}
    assert (by_case[ids["D"]]["outcome"], by_case[ids["D"]]["stop_reason"]) == (
        "stopped",
        "network_not_willing",
    )
    assert by_case[ids["D"]]["stop_stage"] == "first_contact"
    assert by_case[ids["F"]]["stop_stage"] == "clarified"
    assert by_case[ids["L"]]["follow_up_of"] == ids["A"]
    assert (by_case[ids["A"]]["attended"], by_case[ids["A"]]["children"]) == (11, 2)
    assert by_case[ids["B"]]["attended"] == 5  # from version 1 of ConferenceHeld
    assert sorted(cases["month"].to_pylist()).count("2026-03") == 10  # A-J, by request

    outcomes = read_table(target, "outcomes")
    assert rows(outcomes, "case_pseudonym", "kind", "agreement", "result") == sorted(
        [
            (ids["A"], "coordinator_call", "a1", "kept"),
            (ids["A"], "coordinator_call", "a2", "partly_kept"),
            (ids["A"], "coordinator_call", "a3", "not_kept"),
            (ids["A"], "research", "a1", "kept"),
            (ids["A"], "research", "a2", "kept"),
            (ids["A"], "research", "a3", "not_kept"),
            (ids["B"], "coordinator_call", "a1", "kept"),
            (ids["B"], "coordinator_call", "a2", "kept"),
            (ids["K"], "research", None, None),  # nobody reached
        ],
        key=repr,
    )
    ratings = read_table(target, "ratings")
    assert rows(ratings, "case_pseudonym", "respondent_group", "meeting", "plan") == sorted(
        [
            (ids["A"], "family_network", 9, 8),
            (ids["A"], "family_network", 8, 9),
            (ids["A"], "professional", 7, 6),
            (ids["B"], "professional", 8, 8),
        ],
        key=repr,
    )
    attendance = read_table(target, "attendance")
    # A: five roles and the coordinator; B (version 1): three; K: four and the coordinator.
    assert attendance.num_rows == 6 + 3 + 5
    assert rows(attendance.filter(pa.compute.equal(attendance["case_pseudonym"], ids["K"])),
                "role", "attended") == sorted(
        [("coordinator", None), ("family", 2), ("network", 1), ("pupil", 1), ("teacher", 1)],
        key=repr,
    )  # fmt: skip
    events = read_table(target, "events")
    # Every event once (the copy and the not-JSON message not at all), none of the erased M.
    expected = len(known.items) - 1 - sum(1 for e, _ in known.items if e.case_id == known.ids["M"])
    assert events.num_rows == expected
    stage_times = read_table(target, "stage_times")
    a_times = {
        row["stage"]: row["days_from_request"]
        for row in stage_times.to_pylist()
        if row["case_pseudonym"] == ids["A"]
    }
    assert (a_times["first_contact"], a_times["conference_held"]) == (3, 28)
    assert a_times["plan_distributed"] == 30

    live = [
        form
        for case_id in known.ids.values()
        for form in (str(case_id).encode(), case_id.hex.encode(), case_id.bytes)
    ]
    for path, content in every_byte(target):
        assert not [form for form in live if form in content], f"a live case id in {path}"
        for name in ORGANISATIONS:
            assert name.encode() not in content, f"{name} in {path}"
        assert ids["M"].encode() not in content, f"the erased case in {path}"
    assert (target / KEY_FILE).stat().st_mode & 0o777 == 0o600


async def test_organisations_are_exported_only_when_asked_for(bus: Bus, tmp_path: Path) -> None:
    await publish_scenario(bus, scenario())
    target = tmp_path / "with-organisations"
    await export(bus.analyst, ExportRequest(target=target, organisations=True))
    found = read_table(target, "organisations")
    assert rows(found, "organisation", "relation") == sorted(
        [
            ("Woonstichting De Kring", "involved"),  # A's acceptance (and its copy: once)
            ("Jeugdzorg Utrecht", "professional"),  # A's two professionals
            ("Jeugdzorg Utrecht", "professional"),
            ("Jeugdzorg Utrecht", "professional"),  # B's
            ("Gemeente Zwolle", "shared_with"),  # K's plan
        ],
        key=repr,
    )


async def test_a_second_run_goes_on_from_the_first_and_removes_cases_erased_since(
    bus: Bus, tmp_path: Path
) -> None:
    known = scenario()
    items = relayed(known)
    erased_at = next(i for i, (e, *_) in enumerate(items) if isinstance(e, CaseErased))
    first, rest = items[: erased_at - 10], items[erased_at - 10 :]
    b = known.ids["B"]
    late_erasure = CaseErased(
        case_id=b, model="family", reason="requested_by_person", erased_at=datetime.now(UTC)
    )
    await publish(bus, first)
    target = tmp_path / "incremental"
    one = await export(bus.analyst, ExportRequest(target=target))
    assert (one.first_sequence, one.last_sequence) == (1, len(first))
    key = read_key(target / KEY_FILE)
    b_pseudonym, m_pseudonym = pseudonym(key, b), pseudonym(key, known.ids["M"])
    assert b_pseudonym in read_table(target, "cases")["case_pseudonym"].to_pylist()
    assert m_pseudonym in read_table(target, "events")["case_pseudonym"].to_pylist()

    await publish(bus, [*rest, (late_erasure, datetime.now(UTC), "intake", 999)])
    two = await export(bus.analyst, ExportRequest(target=target))
    assert (two.first_sequence, two.last_sequence) == (len(first) + 1, len(items) + 1)
    assert two.erased_now == 2  # M and B
    assert "stream positions" in two.summary() and "2 erased case(s) removed" in two.summary()
    for path, content in every_byte(target / "current"):
        if "state" in path.parts:
            continue  # the state keeps the erased pseudonyms, so they are never taken in again
        assert b_pseudonym.encode() not in content, f"B still in {path}"
        assert m_pseudonym.encode() not in content, f"M still in {path}"
    assert len(list((target / "generations").iterdir())) == 1

    # Two runs give what one run over the whole stream gives (under the same key).
    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / KEY_FILE).write_bytes((target / KEY_FILE).read_bytes())
    await export(bus.analyst, ExportRequest(target=whole))
    for name in TABLES:
        assert sorted(read_table(target, name).to_pylist(), key=repr) == sorted(
            read_table(whole, name).to_pylist(), key=repr
        ), name

    # Nothing new: a third run reads nothing and changes no row.
    three = await export(bus.analyst, ExportRequest(target=target))
    assert (three.read, three.folded, three.generation) == (0, 0, two.generation)
    assert "nothing new after stream position" in three.summary()
    assert three.cases == 11  # A-L but B; the twelve less B's erasure


async def test_pseudonyms_are_stable_under_one_key_and_differ_under_another(
    bus: Bus, tmp_path: Path
) -> None:
    known = scenario()
    await publish_scenario(bus, known)
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    await export(bus.analyst, ExportRequest(target=mine))
    first = read_table(mine, "cases").to_pylist()
    # The stream is lost and made again; the relays publish everything again from the stores.
    await bus.fresh_stream()
    await publish_scenario(bus, known)
    again = await export(bus.analyst, ExportRequest(target=mine))
    assert (again.first_sequence, again.folded, again.duplicates) == (1, 0, len(known.items))
    assert sorted(read_table(mine, "cases").to_pylist(), key=repr) == sorted(first, key=repr)
    await export(bus.analyst, ExportRequest(target=theirs))
    ours = {row["case_pseudonym"] for row in first}
    other = set(read_table(theirs, "cases")["case_pseudonym"].to_pylist())
    assert len(ours) == len(other) == 12 and not ours & other


async def test_csv_and_duckdb_targets_hold_the_same_rows(bus: Bus, tmp_path: Path) -> None:
    await publish_scenario(bus, scenario())
    parquet, csv, database = tmp_path / "p", tmp_path / "c", tmp_path / "d"
    await export(bus.analyst, ExportRequest(target=parquet))
    for other in (csv, database):
        other.mkdir()
        (other / KEY_FILE).write_bytes((parquet / KEY_FILE).read_bytes())
    await export(bus.analyst, ExportRequest(target=csv, format=ExportFormat.CSV))
    await export(bus.analyst, ExportRequest(target=database, format=ExportFormat.DUCKDB))
    with duckdb.connect(str(database / "current" / "kring.duckdb"), read_only=True) as db:
        for name in TABLES:
            expected = read_table(parquet, name)
            assert db.execute(f"SELECT count(*) FROM {name}").fetchone() == (expected.num_rows,)
        kept = db.execute(
            "SELECT count(*) FROM outcomes WHERE result = 'kept' AND month = '2026-04'"
        ).fetchone()
        assert kept == (1,)  # A's call on 29 April: a1 (B's call, with two kept, is in May)
    for name in TABLES:
        from_csv = read_table(csv, name, "csv")
        assert from_csv.num_rows == read_table(parquet, name).num_rows, name
    assert sorted(read_table(csv, "ratings", "csv")["meeting"].to_pylist()) == [7, 8, 8, 9]


async def test_a_run_that_fails_before_it_is_complete_leaves_the_target_as_it_was(
    bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = scenario()
    items = relayed(known)
    await publish(bus, items[:20])
    target = tmp_path / "atomic"
    await export(bus.analyst, ExportRequest(target=target))
    before = {p.relative_to(target): b for p, b in every_byte(target / "current")}
    await publish(bus, items[20:])

    def crash(self: Target, generation: str) -> None:
        raise RuntimeError("killed before the swap")

    monkeypatch.setattr(Target, "_swap_current", crash)
    with pytest.raises(RuntimeError):
        await export(bus.analyst, ExportRequest(target=target))
    after = {p.relative_to(target): b for p, b in every_byte(target / "current")}
    assert after == before  # what tools read is the last complete run, byte for byte
    assert len(list((target / "generations").iterdir())) == 2  # the unfinished one beside it

    monkeypatch.undo()
    done = await export(bus.analyst, ExportRequest(target=target))
    assert done.first_sequence == 21
    assert read_table(target, "cases").num_rows == 12
    assert len(list((target / "generations").iterdir())) == 1


def kring(
    *args: str, server: NatsServer, cwd: Path, nats_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI as an analyst runs it: their NATS user and password from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRING_")}
    env |= server.env(ANALYST)
    if nats_url is not None:
        env["KRING_NATS_URL"] = nats_url
    return subprocess.run(
        [sys.executable, "-m", "kring.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


async def test_bad_input_stops_with_one_line_and_writes_nothing(
    bus: Bus, server: NatsServer, tmp_path: Path
) -> None:
    await publish_scenario(bus, scenario())
    target = tmp_path / "target"
    unknown = kring("export", "--to", str(target), "--format", "xlsx", server=server, cwd=tmp_path)
    assert unknown.returncode == 2 and "xlsx" in one_line_error(unknown)
    backwards = kring(
        "export", "--to", str(target), "--since", "2026-05-01", "--until", "2026-04-01",
        server=server, cwd=tmp_path,
    )  # fmt: skip
    assert backwards.returncode == 2 and "--since" in one_line_error(backwards)
    assert not target.exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    unwritable = kring("export", "--to", str(a_file / "export"), server=server, cwd=tmp_path)
    assert unwritable.returncode == 2 and "cannot write" in one_line_error(unwritable)

    made = kring("export", "--to", str(target), server=server, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "exported" in made.stdout and "12 case(s)" in made.stdout
    before = sorted(p.name for p in (target / "generations").iterdir())
    other_key = tmp_path / "other.key"
    other_key.write_text("c2VjcmV0LWtleS1vZi1hbm90aGVyLWV4cG9ydC10YXJnZXQ=\n")
    wrong = kring(
        "export", "--to", str(target), "--key-file", str(other_key), server=server, cwd=tmp_path
    )
    assert wrong.returncode == 2 and "another pseudonym key" in one_line_error(wrong)
    other_format = kring(
        "export", "--to", str(target), "--format", "csv", server=server, cwd=tmp_path
    )
    assert other_format.returncode == 2 and "parquet" in one_line_error(other_format)
    assert sorted(p.name for p in (target / "generations").iterdir()) == before

    report_backwards = kring(
        "report", "--out", str(tmp_path / "r.html"), "--since", "2026-05-01", "--until",
        "2026-04-01", server=server, cwd=tmp_path,
    )  # fmt: skip
    assert report_backwards.returncode == 2 and "--since" in one_line_error(report_backwards)
    report_by = kring("report", "--by", "colour", server=server, cwd=tmp_path)
    assert report_by.returncode == 2 and "colour" in one_line_error(report_by)
    nowhere = kring("report", "--out", str(a_file / "r.html"), server=server, cwd=tmp_path)
    assert nowhere.returncode == 2 and "cannot write" in one_line_error(nowhere)
    assert not list(tmp_path.glob("*.png"))

    unreachable = kring("export", "--to", str(tmp_path / "x"), server=server,
                        nats_url="nats://127.0.0.1:1", cwd=tmp_path)  # fmt: skip
    assert unreachable.returncode == 1 and "cannot reach NATS" in one_line_error(unreachable)


async def test_the_report_renders_every_question_with_charts_that_have_data(
    bus: Bus, tmp_path: Path
) -> None:
    await publish_scenario(bus, scenario())
    out = tmp_path / "report.html"
    written = await make_report(bus.analyst, ReportRequest(out=out, by=GroupBy.REGION))
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and 'lang="nl"' in page
    # Self-contained: every picture inside the page, nothing fetched from anywhere.
    assert 'src="http' not in page and 'href="http' not in page and "<link" not in page
    assert page.count('src="data:image/png;base64,') == len(written.charts) == 2 * 9
    # Ours beside the published figures: the family and network's 8.5 for the plan, theirs 8.4.
    assert "8,5 (n=2)" in page and "8,4" in page and "8.4" in page
    assert "Eigen Kracht Centrale, jaarcijfers 2023" in page
    assert "Utrecht" in page and "Zwolle" in page  # the table by region
    names = {p.name for p in written.pngs}
    assert {"report-funnel.png", "report-lead_times.png", "report-ratings.en.png"} <= names
    for chart, path in zip(written.charts, written.pngs, strict=True):
        assert chart.values > 0, f"{chart.name} ({chart.lang}) shows no data"
        with Image.open(path) as image:
            assert image.format == "PNG"
            width, height = image.size
            assert width >= 800 and height >= 250, (path.name, image.size)
            # Data is drawn in colour; axes, labels and "no data yet" in black and grey.
            pixels = image.convert("RGB").resize((width // 4, height // 4))
            data = pixels.tobytes()
            coloured = sum(
                1
                for i in range(0, len(data), 3)
                if max(data[i : i + 3]) - min(data[i : i + 3]) > 60
            )
            assert coloured / (pixels.width * pixels.height) > 0.005, f"{path.name}: no data"
    assert written.answer.overall.requests == 12
