"""``kring export``: the KRING stream as pseudonymised columnar tables, one run after another.

**The target** is a folder that belongs to one export::

    DIR/pseudonym.key              the key of the pseudonyms (made on the first run, 0600)
    DIR/current -> generations/gN  what the last complete run wrote
    DIR/generations/gN/            manifest.json, state/, and the tables:
        cases/month=2026-03/part-gN.parquet   (or .csv; or one kring.duckdb)
        stage_times/ events/ attendance/ outcomes/ ratings/ [organisations/]

**Atomic per run.** A run builds a new generation beside the current one (files it does not
change are hard links), writes the manifest last, and then swaps ``current`` to it in one
rename. A run that fails or is killed leaves ``current`` as it was; its half-built generation is
removed by the next run. Tools read ``DIR/current/<table>/``.

**Incremental.** The manifest says how far the stream was read (its last position, and when the
stream was made); the next run reads on from there. A stream deleted and made again is read from
its start: every event's ``origin:position`` is remembered, so nothing is counted twice.

**Pseudonymised.** A case id becomes ``HMAC-SHA256(key, case id)``, cut to 32 hex digits, under a
key kept with the target: stable from run to run, different in every other target, and only who
holds the key (and Kring's live ids) can link a row back to a case. Share the tables, not the key.
No names and no free text are on the stream to begin with; organisations stay out unless asked
for; coordinator ids, participant ids and languages stay out.

**Erasure.** An erased case is left out, and on the next run after its erasure every row of it
is removed from the target; it is never taken in again.

**Windows.** ``--since``/``--until`` choose, for the cases and their stage times, the cases whose
request was made in the window; for every other table, the events recorded in it. A target
keeps the window it was made with.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from kring.analytics.facts import FACT_FIELDS, CaseFacts, Fold, Months, erased_digest
from kring.analytics.stream import StreamRead, StreamState
from kring.analytics.tables import (
    EVENT_TABLES,
    SCHEMAS,
    TS,
    Rows,
    case_tables,
    without,
)

KEY_FILE = "pseudonym.key"
CURRENT = "current"
GENERATIONS = "generations"
MANIFEST = "manifest.json"
DUCKDB_FILE = "kring.duckdb"
PSEUDONYM_DIGITS = 32
#: Bumped when the tables' layout changes; a target of another layout is not appended to.
LAYOUT = 1


class ExportFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"
    DUCKDB = "duckdb"


class ExportError(Exception):
    """A target or an option that cannot be used, said in one line (the CLI's exit code 2)."""


# -- pseudonyms -----------------------------------------------------------------------------
class Pseudonyms:
    """Keyed pseudonyms of case ids under one target's key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, case_id: UUID) -> str:
        digest = hmac.new(self._key, case_id.bytes, hashlib.sha256).hexdigest()
        return digest[:PSEUDONYM_DIGITS]

    @property
    def fingerprint(self) -> str:
        """Names the key in the manifest without giving it away."""
        return hmac.new(self._key, b"kring export key", hashlib.sha256).hexdigest()[:16]


def read_key(path: Path) -> bytes:
    try:
        key = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ExportError(f"cannot read the pseudonym key {path}: {_why(error)}") from None
    if len(key) < 32:
        raise ExportError(f"the pseudonym key {path} is not a Kring export key")
    return key


def make_key(path: Path) -> bytes:
    key = secrets.token_bytes(32)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(base64.b64encode(key).decode() + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    return key


# -- the state a target keeps between runs ------------------------------------------------
FACT_TYPES: dict[str, pa.DataType] = {
    "submitted_at": TS,
    "accepted_at": TS,
    "withdrawn_before_acceptance_at": TS,
    "withdrawn_after_acceptance_at": TS,
    "assigned_at": TS,
    "contacted_at": TS,
    "held_on": pa.date32(),
    "ended_at": TS,
    "distributed_at": TS,
    "follow_up_due_at": TS,
    "outcome_recorded_at": TS,
    "informational_talk": pa.bool_(),
    "attended": pa.int32(),
    "children": pa.int32(),
    "plan_versions": pa.int32(),
    "follow_up_conferences": pa.int32(),
}
STATE_SCHEMA = pa.schema([(name, FACT_TYPES.get(name, pa.string())) for name in FACT_FIELDS])


def save_state(fold: Fold, folder: Path) -> None:
    folder.mkdir(parents=True)
    columns: dict[str, list[Any]] = {name: [] for name in FACT_FIELDS}
    for facts in fold.cases.values():
        for name in FACT_FIELDS:
            columns[name].append(getattr(facts, name))
    pq.write_table(pa.Table.from_pydict(columns, schema=STATE_SCHEMA), folder / "cases.parquet")
    pq.write_table(
        pa.table({"event_id": pa.array(sorted(fold.seen), pa.string())}), folder / "seen.parquet"
    )
    digests = fold.erased_digests | {erased_digest(key) for key in fold.erased}
    pq.write_table(
        pa.table({"erased_digest": pa.array(sorted(digests), pa.string())}),
        folder / "erased.parquet",
    )


def load_state(fold: Fold, folder: Path) -> None:
    for row in pq.read_table(folder / "cases.parquet").to_pylist():
        fold.cases[row["case"]] = CaseFacts(**row)
    fold.seen.update(pq.read_table(folder / "seen.parquet")["event_id"].to_pylist())
    fold.erased_digests.update(
        pq.read_table(folder / "erased.parquet")["erased_digest"].to_pylist()
    )


# -- the target ---------------------------------------------------------------------------
@dataclass
class Manifest:
    layout: int
    format: str
    key: str
    since: str | None
    until: str | None
    organisations: bool
    generation: str
    stream_created: str | None
    last_sequence: int
    last_event_at: str | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class ExportRequest:
    target: Path
    format: ExportFormat = ExportFormat.PARQUET
    since: datetime | None = None
    until: datetime | None = None
    organisations: bool = False
    key_file: Path | None = None

    def check(self) -> None:
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise ExportError("give times with a zone, e.g. 2026-03-01T00:00:00+01:00")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ExportError(
                f"--since ({self.since.isoformat()}) is not before --until"
                f" ({self.until.isoformat()})"
            )


@dataclass
class ExportResult:
    generation: str
    first_sequence: int
    last_sequence: int
    read: int
    folded: int
    duplicates: int
    undecodable: dict[str, int]
    cases: int
    erased_now: int
    last_event_at: datetime | None
    rows: dict[str, int]
    resumed: bool

    def summary(self) -> str:
        position = (
            f"stream positions {self.first_sequence}-{self.last_sequence}"
            if self.last_sequence >= self.first_sequence
            else f"nothing new after stream position {self.last_sequence}"
        )
        until = self.last_event_at.isoformat() if self.last_event_at else "-"
        bad = sum(self.undecodable.values())
        return (
            f"exported {self.folded} event(s) from {position} (read {self.read},"
            f" duplicates {self.duplicates}, undecodable {bad}); {self.cases} case(s);"
            f" {self.erased_now} erased case(s) removed; events up to {until};"
            f" generation {self.generation}"
        )


class Target:
    """One export's folder: its key, its current generation and the next one being built."""

    def __init__(self, request: ExportRequest) -> None:
        self.request = request
        self.root = request.target
        self.key_path = request.key_file or self.root / KEY_FILE
        self.manifest: Manifest | None = None
        self.key = b""

    # -- opening --------------------------------------------------------------------------
    def open(self) -> None:
        """Check the folder, its key and its manifest; make the folder and key on a first run.
        Every refusal is an ``ExportError`` and leaves the folder as it was."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise ExportError(f"{root} is not a folder")
        current = root / CURRENT
        if (
            root.is_dir()
            and not current.exists()
            and _has_files_besides(root, {GENERATIONS, KEY_FILE})
        ):
            raise ExportError(
                f"{root} holds other files and no Kring export: give an empty or new folder"
            )
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise ExportError(f"cannot write to {root}: {_why(error)}") from None
        if current.exists():
            try:
                self.manifest = Manifest(**json.loads((current / MANIFEST).read_text()))
            except (OSError, ValueError, TypeError) as error:
                raise ExportError(f"{current / MANIFEST} cannot be read: {_why(error)}") from None
            self._check_same_export(self.manifest)
            if not self.key_path.exists():
                raise ExportError(
                    f"{root} was written under a pseudonym key that is not at {self.key_path};"
                    " without it the pseudonyms would not match"
                )
        if self.key_path.exists():
            self.key = read_key(self.key_path)
            if self.manifest is not None and Pseudonyms(self.key).fingerprint != self.manifest.key:
                raise ExportError(
                    f"{root} was written under another pseudonym key than {self.key_path}"
                )
        else:
            try:
                self.key = make_key(self.key_path)
            except OSError as error:
                raise ExportError(f"cannot write the key {self.key_path}: {_why(error)}") from None
        self._remove_unfinished()

    def _check_same_export(self, manifest: Manifest) -> None:
        request = self.request
        if manifest.layout != LAYOUT:
            raise ExportError(f"{self.root} has another export layout ({manifest.layout})")
        if manifest.format != request.format.value:
            raise ExportError(
                f"{self.root} holds a {manifest.format} export, not {request.format.value}:"
                " give another folder for another format"
            )
        window = (_iso(request.since), _iso(request.until))
        if (manifest.since, manifest.until) != window:
            raise ExportError(
                f"{self.root} was exported for --since {manifest.since or '-'} --until"
                f" {manifest.until or '-'}: give the same window, or another folder"
            )
        if manifest.organisations != request.organisations:
            raise ExportError(
                f"{self.root} was exported {'with' if manifest.organisations else 'without'}"
                " organisations: give the same setting, or another folder"
            )

    def _remove_unfinished(self) -> None:
        """A run that did not finish left a generation ``current`` does not point at."""
        generations = self.root / GENERATIONS
        if not generations.is_dir():
            return
        keep = self.current_generation
        for folder in generations.iterdir():
            if folder.name != keep:
                shutil.rmtree(folder, ignore_errors=True)

    @property
    def current_generation(self) -> str | None:
        return self.manifest.generation if self.manifest else None

    @property
    def current_folder(self) -> Path | None:
        generation = self.current_generation
        return self.root / GENERATIONS / generation if generation else None

    def next_generation(self) -> str:
        number = int(self.current_generation[1:]) + 1 if self.current_generation else 1
        return f"g{number:06d}"

    def resume_after(self, stream: StreamState) -> tuple[int, bool]:
        """The stream position to read on from, and whether this continues the last run."""
        manifest = self.manifest
        if manifest is None:
            return 0, False
        same_stream = manifest.stream_created == _iso(stream.created)
        if same_stream and manifest.last_sequence <= stream.last:
            return manifest.last_sequence, True
        return 0, False  # a stream made again: read it whole; what was seen counts once

    # -- writing --------------------------------------------------------------------------
    def commit(
        self, fold: Fold, rows: Rows, stream: StreamState, read: StreamRead, erased_now: set[str]
    ) -> ExportResult:
        request = self.request
        generation = self.next_generation()
        folder = self.root / GENERATIONS / generation
        folder.mkdir(parents=True)
        months = rows.months
        tables = case_tables(iter(fold.cases.values()), months, request.since, request.until)
        event_tables = [t for t in EVENT_TABLES if t != "organisations" or request.organisations]
        for name in event_tables:
            tables[name] = rows.table(name, fold.erased)
        written: dict[str, list[str]]
        if request.format is ExportFormat.DUCKDB:
            written = self._write_duckdb(folder, tables, event_tables, erased_now)
        else:
            written = self._write_files(folder, generation, tables, event_tables, erased_now)
        save_state(fold, folder / "state")
        previous_runs = self.manifest.runs if self.manifest else []
        manifest = Manifest(
            layout=LAYOUT,
            format=request.format.value,
            key=Pseudonyms(self.key).fingerprint,
            since=_iso(request.since),
            until=_iso(request.until),
            organisations=request.organisations,
            generation=generation,
            stream_created=_iso(stream.created),
            last_sequence=read.last,
            last_event_at=_iso(fold.last_time),
            runs=[
                *previous_runs,
                {
                    "generation": generation,
                    "at": datetime.now(UTC).isoformat(),
                    "from_sequence": read.start,
                    "to_sequence": read.last,
                    "events": fold.folded,
                    "cases": tables["cases"].num_rows,
                    "erased_removed": len(erased_now),
                },
            ],
            tables=written,
        )
        (folder / MANIFEST).write_text(manifest.as_json(), encoding="utf-8")
        _sync_tree(folder)
        self._swap_current(generation)
        old = self.current_folder
        self.manifest = manifest
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return ExportResult(
            generation=generation,
            first_sequence=read.start,
            last_sequence=read.last,
            read=read.read,
            folded=fold.folded,
            duplicates=fold.duplicates,
            undecodable=dict(read.undecodable),
            cases=tables["cases"].num_rows,
            erased_now=len(erased_now),
            last_event_at=fold.last_time,
            rows={name: table.num_rows for name, table in tables.items()},
            resumed=read.start > 1,
        )

    def unchanged(self, position: int) -> ExportResult:
        """A run that found nothing new: the current generation stands as it is."""
        assert self.manifest is not None
        last = self.manifest.last_event_at
        return ExportResult(
            generation=self.manifest.generation,
            first_sequence=position + 1,
            last_sequence=position,
            read=0,
            folded=0,
            duplicates=0,
            undecodable={},
            cases=_cases_of(self.manifest),
            erased_now=0,
            last_event_at=datetime.fromisoformat(last) if last else None,
            rows={},
            resumed=True,
        )

    def _swap_current(self, generation: str) -> None:
        link = self.root / f".{CURRENT}.tmp"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.symlink(Path(GENERATIONS) / generation, link)
        os.replace(link, self.root / CURRENT)
        _sync_folder(self.root)

    def _write_files(
        self,
        folder: Path,
        generation: str,
        tables: dict[str, pa.Table],
        event_tables: list[str],
        erased_now: set[str],
    ) -> dict[str, list[str]]:
        """Parquet or CSV files, one folder per month (``month=2026-03``, as Hive, DuckDB,
        pandas and Spark read partitions)."""
        suffix = "." + self.request.format.value
        written: dict[str, list[str]] = {}
        previous = self.current_folder
        previous_files = self.manifest.tables if self.manifest else {}
        for name, table in tables.items():
            files: list[str] = []
            if name in event_tables and previous is not None:
                # What earlier runs wrote stays (hard links), less any case erased since.
                for relative in previous_files.get(name, []):
                    kept = self._carry_over(previous / relative, folder / relative, erased_now)
                    if kept:
                        files.append(relative)
            for month, part in _by_month(table):
                relative = f"{name}/month={month}/part-{generation}{suffix}"
                self._write_part(part, folder / relative)
                files.append(relative)
            if not files:
                # An empty table still has its columns, so tools find it.
                relative = f"{name}/empty{suffix}"
                self._write_part(table.drop_columns(["month"]), folder / relative)
                files.append(relative)
            written[name] = sorted(files)
        return written

    def _carry_over(self, source: Path, destination: Path, erased_now: set[str]) -> bool:
        """Link ``source`` into the new generation, or write it again without the cases erased
        since; returns False when nothing of it is left."""
        if source.name.startswith("empty"):
            return False
        destination.parent.mkdir(parents=True, exist_ok=True)
        if erased_now:
            table = self._read_part(source)
            kept = without(table, erased_now)
            if kept.num_rows < table.num_rows:
                if kept.num_rows:
                    self._write_part(kept, destination)
                return bool(kept.num_rows)
        try:
            os.link(source, destination)
        except OSError:
            shutil.copy2(source, destination)
        return True

    def _write_part(self, table: pa.Table, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if "month" in table.column_names:
            table = table.drop_columns(["month"])
        if self.request.format is ExportFormat.CSV:
            pa_csv.write_csv(table, path)
        else:
            pq.write_table(table, path, compression="zstd")

    def _read_part(self, path: Path) -> pa.Table:
        name = path.parts[-3]
        schema = SCHEMAS[name].remove(SCHEMAS[name].get_field_index("month"))
        if self.request.format is ExportFormat.CSV:
            options = pa_csv.ConvertOptions(column_types=schema)
            return pa_csv.read_csv(path, convert_options=options)
        return pq.read_table(path)

    def _write_duckdb(
        self,
        folder: Path,
        tables: dict[str, pa.Table],
        event_tables: list[str],
        erased_now: set[str],
    ) -> dict[str, list[str]]:
        """One DuckDB database; every table has its ``month`` column (what the files are
        partitioned by)."""
        import duckdb

        database = folder / DUCKDB_FILE
        previous = self.current_folder
        if previous is not None:
            shutil.copy2(previous / DUCKDB_FILE, database)
        with duckdb.connect(str(database)) as db:
            for name, table in tables.items():
                db.register("incoming", table)
                if name in event_tables and previous is not None:
                    if erased_now:
                        gone = pa.table({"case_pseudonym": sorted(erased_now)})
                        db.register("gone", gone)
                        db.execute(
                            f"DELETE FROM {name} WHERE case_pseudonym IN"  # noqa: S608
                            " (SELECT case_pseudonym FROM gone)"
                        )
                        db.unregister("gone")
                    db.execute(f"INSERT INTO {name} SELECT * FROM incoming")  # noqa: S608
                else:
                    db.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM incoming")  # noqa: S608
                db.unregister("incoming")
            db.execute("CHECKPOINT")
        return {name: [DUCKDB_FILE] for name in tables}


def _cases_of(manifest: Manifest) -> int:
    return int(manifest.runs[-1].get("cases", 0)) if manifest.runs else 0


def _by_month(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    if table.num_rows == 0:
        return
    import pyarrow.compute as pc

    months = table["month"]
    for month in sorted(pc.unique(months).to_pylist()):
        yield month, table.filter(pc.equal(months, month))


def _has_files_besides(folder: Path, allowed: set[str]) -> bool:
    return any(
        entry.name not in allowed and not entry.name.startswith(".") for entry in folder.iterdir()
    )


def _sync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        elif path.is_dir():
            _sync_folder(path)
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _why(error: BaseException) -> str:
    """An OS error as its reason, without the traceback."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return re.sub(r"\s+", " ", str(error))[:200] or type(error).__name__


# -- a run --------------------------------------------------------------------------------
Progress = Callable[[int, int], None]


async def export(
    connection: Any, request: ExportRequest, *, progress: Progress | None = None
) -> ExportResult:
    """One run: open (or make) the target, read the stream on from where the last run got to,
    fold, write the next generation and make it current."""
    from kring.analytics.stream import read_stream, stream_state, young_collections_only

    request.check()
    target = Target(request)
    target.open()
    stream = await stream_state(connection)
    after, resumed = target.resume_after(stream)
    if resumed and after == stream.last:
        return target.unchanged(after)  # nothing new since the last run: nothing to write
    months = Months()
    rows = Rows(months, request.since, request.until, request.organisations)
    fold = Fold(key=Pseudonyms(target.key), sink=rows)
    total = max(stream.last - after, 0)

    def advanced(position: int) -> None:
        if progress is not None:
            progress(position - after, total)

    with young_collections_only():
        if target.current_folder is not None:
            load_state(fold, target.current_folder / "state")
        read = await read_stream(
            connection, after=after, until=stream.last, on_event=fold.fold, on_progress=advanced
        )
        return target.commit(fold, rows, stream, read, fold.newly_erased)
