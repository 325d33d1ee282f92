"""``kring``: run, login, demo, cases, case, audit, access-log, erase, replay, export, report,
dlq, rebuild, partners."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
from collections.abc import Callable, Iterator
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar
from uuid import UUID

import httpx
import nats.errors
import typer

from kring.client import (
    REFUSALS,
    AccessError,
    KringClient,
    NatsCredentialsError,
    ServiceUnavailableError,
    access_line,
    audit_line,
    connect_nats,
)
from shared.erasure import ErasureReason
from shared.events import ConferenceModel

T = TypeVar("T")

if TYPE_CHECKING:
    from kring.dlq import Replayed

app = typer.Typer(
    help="Kring: family group conferences, event-sourced on NATS JetStream.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def run(
    data_dir: Annotated[
        Path, typer.Option(envvar="KRING_DATA_DIR", help="Where the stores and NATS keep data.")
    ] = Path("data"),
    nats_port: Annotated[int, typer.Option(help="Port for the local nats-server.")] = 4222,
) -> None:
    """Start nats-server and the four services in the foreground (Ctrl-C stops)."""
    from kring.supervisor import run_system

    raise typer.Exit(run_system(data_dir.resolve(), nats_port=nats_port))


@app.command()
def demo(
    model: Annotated[
        ConferenceModel, typer.Option(help="The conference model of the sample case.")
    ] = ConferenceModel.FAMILY,
    region: Annotated[str, typer.Option(help="Region of the sample case.")] = "Utrecht",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each step.")] = 120.0,
) -> None:
    """Walk one sample case through the running system, printing each step and event."""
    import asyncio

    from kring.demo import DemoError, run_demo

    nats_url = os.environ.get("KRING_NATS_URL", "nats://127.0.0.1:4222")
    try:
        asyncio.run(run_demo(nats_url, model=model, region=region, patience=timeout))
    except (DemoError, ServiceUnavailableError, AccessError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


@app.command()
def login(
    name: Annotated[str, typer.Option("--as", help="Who you are (your name).")],
    role: Annotated[
        list[str],
        typer.Option(help="Your role: regional_manager, coordinator, operator, … (repeatable)."),
    ],
    region: Annotated[
        list[str] | None, typer.Option(help="A region you work in (repeatable).")
    ] = None,
    coordinator: Annotated[
        str | None, typer.Option(help="Your coordinator id, as a coordinator.")
    ] = None,
    organisation: Annotated[str | None, typer.Option(help="Your organisation.")] = None,
    participant: Annotated[
        list[str] | None,
        typer.Option(help="CASE_ID:PARTICIPANT_ID, as a participant (repeatable)."),
    ] = None,
) -> None:
    """Sign in with the development issuer of `kring run` and keep the token for the CLI
    (KRING_TOKEN_FILE, default ~/.config/kring/token, readable by you only)."""
    from kring.client import DevLogin, Who, save_token

    who = Who(
        name=name,
        roles=tuple(role),
        regions=tuple(region or ()),
        coordinator=coordinator,
        organisation=organisation,
        participant=tuple(participant or ()),
    )
    try:
        token = DevLogin().token_sync(who)
    except ServiceUnavailableError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except AccessError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    path = save_token(token)
    typer.echo(f"signed in as {name} ({', '.join(role)}); the token is kept in {path}")


def _case_id(text: str) -> str:
    """A case id as the services give it (a UUID), or one line and exit code 2."""
    try:
        return str(UUID(text.strip()))
    except ValueError:
        shown = repr(text) if text.strip() else "an empty case id"
        typer.echo(
            f"error: {shown} is not a case id (a UUID, as intake gives it:"
            " 3f1c2b4e-…; `kring cases` lists them)",
            err=True,
        )
        raise typer.Exit(2) from None


def _answered(error: httpx.HTTPStatusError) -> NoReturn:
    """A service answered with an error the command has no words of its own for."""
    from kring.client import detail_of

    response = error.response
    typer.echo(
        f"error: {response.url.host}:{response.url.port} answered {response.status_code}"
        f" {detail_of(response)}".rstrip(),
        err=True,
    )
    raise typer.Exit(1) from None


def _read_case(case_id: str, read: Callable[[KringClient, str], T]) -> T:
    """Ask the services about one case; exit 1 if they do not answer or refuse, 2 if the id
    is not one or none knows it."""
    case_id = _case_id(case_id)
    client = KringClient()
    try:
        found = read(client, case_id)
    except (ServiceUnavailableError, AccessError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except httpx.HTTPStatusError as error:
        _answered(error)
    finally:
        client.close()
    if not found:
        typer.echo(f"error: no service knows case {case_id}", err=True)
        raise typer.Exit(2)
    return found


@app.command()
def audit(
    case_id: Annotated[str, typer.Argument(help="The case id (from intake).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for machines.")] = False,
) -> None:
    """Every stored event of one case across all services, in order."""
    entries = _read_case(case_id, KringClient.history)
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    for entry in entries:
        typer.echo(audit_line(entry))


@app.command("access-log")
def access_log(
    case_id: Annotated[str, typer.Argument(help="The case id (from intake).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for machines.")] = False,
) -> None:
    """Every recorded read of one case's personal data across the services: who, what, when
    (a regional manager of the case's region, or an operator)."""
    entries = _read_case(case_id, KringClient.access_log)
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    for entry in entries:
        typer.echo(access_line(entry))


@app.command()
def case(
    case_id: Annotated[str, typer.Argument(help="The case id (from intake).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for machines.")] = False,
) -> None:
    """One case's full picture: what each service knows of it now."""
    views = _read_case(case_id, KringClient.picture)
    if as_json:
        typer.echo(json.dumps(views, indent=2))
        return
    for service, view in views.items():
        typer.echo(f"{service}:")
        for key, value in view.items():
            if key != "case_id" and value not in (None, [], {}):
                shown = value if isinstance(value, str | int | float) else json.dumps(value)
                typer.echo(f"  {key:<22} {shown}")


@app.command()
def cases(
    stage: Annotated[str | None, typer.Option(help="A stage, e.g. conference_held.")] = None,
    model: Annotated[str | None, typer.Option(help="family, group, restorative, ...")] = None,
    region: Annotated[str | None, typer.Option(help="A region.")] = None,
    coordinator: Annotated[str | None, typer.Option(help="A coordinator id.")] = None,
    overdue: Annotated[
        bool | None, typer.Option("--overdue/--not-overdue", help="First contact overdue.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for machines.")] = False,
) -> None:
    """Every case's stage across the services, filtered. ``--stage`` is the stage shown: the
    furthest any service took the case."""
    from kring.cases import STAGE_RANK, merge, select, table

    if stage is not None and stage not in STAGE_RANK:
        typer.echo(f"error: no stage {stage!r}; the stages are {', '.join(STAGE_RANK)}", err=True)
        raise typer.Exit(2)
    models = [m.value for m in ConferenceModel]
    if model is not None and model not in models:
        typer.echo(f"error: no model {model!r}; the models are {', '.join(models)}", err=True)
        raise typer.Exit(2)
    client = KringClient()
    try:
        rows = client.lists(model=model, region=region)
    except (ServiceUnavailableError, AccessError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except httpx.HTTPStatusError as error:
        _answered(error)
    finally:
        client.close()
    chosen = select(
        merge(rows),
        stage=stage,
        model=model,
        region=region,
        coordinator=coordinator,
        overdue=overdue,
    )
    if as_json:
        typer.echo(json.dumps([c.as_dict() for c in chosen], indent=2))
        return
    for line in table(chosen):
        typer.echo(line)


@app.command()
def erase(
    case_id: Annotated[str, typer.Argument(help="The case id (from intake).")],
    reason: Annotated[ErasureReason, typer.Option(help="Why, from the kept list.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every service.")] = 60.0,
) -> None:
    """Erase a case in every service (right to erasure), with every follow-up case opened from
    it, as the signed-in regional manager of its region or operator: their events become
    unreadable for good, the erasure itself stays on the record. Waits until every service has
    erased each of them."""
    import time

    from kring.client import SERVICES, detail_of

    case_id = _case_id(case_id)
    client = KringClient()
    try:
        answer = client.request(
            "intake", "POST", f"/cases/{case_id}/erase", json={"reason": reason.value}
        )
        cases = [case_id]
        if answer.status_code == 410:
            typer.echo(f"case {case_id} was already erased")
        elif answer.status_code == 404:
            typer.echo(f"error: no case {case_id} in intake", err=True)
            raise typer.Exit(2)
        elif answer.status_code == 422:
            typer.echo(f"error: {detail_of(answer)}", err=True)
            raise typer.Exit(2)
        elif answer.status_code >= 400:
            typer.echo(f"error: {answer.status_code} {detail_of(answer)}", err=True)
            raise typer.Exit(1)
        else:
            erased = answer.json()
            typer.echo(f"intake        erased at {erased['erased_at']}")
            for follow_up in erased.get("follow_ups_erased", []):
                typer.echo(f"intake        erased follow-up case {follow_up} with it")
                cases.append(follow_up)
        waiting = [(s, case) for case in cases for s in SERVICES if s != "intake"]
        deadline = time.monotonic() + timeout
        while waiting:
            for service, case in list(waiting):
                status = client.request(service, "GET", f"/cases/{case}/erasure")
                if status.status_code == 403:
                    typer.echo(f"error: {service}: {detail_of(status)}", err=True)
                    raise typer.Exit(1)
                if status.status_code == 200 and status.json()["erased"]:
                    known = "erased" if status.json()["known"] else "erased (never held any of it)"
                    of = "" if case == case_id else f" ({case})"
                    typer.echo(f"{service:<13} {known}{of}")
                    waiting.remove((service, case))
            if waiting and time.monotonic() > deadline:
                late = ", ".join(sorted({service for service, _ in waiting}))
                typer.echo(f"error: not yet erased in {late}", err=True)
                raise typer.Exit(1)
            time.sleep(0.2)
    except (ServiceUnavailableError, AccessError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()


@app.command("replay")
def replay_stream(
    since: Annotated[str | None, typer.Option(help="ISO time with zone; from here.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time with zone; before here.")] = None,
    case_id: Annotated[str | None, typer.Option("--case", help="One case id.")] = None,
    types: Annotated[
        list[str] | None, typer.Option("--type", help="An event type, e.g. plan-distributed.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for machines.")] = False,
) -> None:
    """Replay the KRING stream into an analyst's projection and print its summary."""
    import asyncio
    from datetime import datetime
    from uuid import UUID

    from kring.replay import ReplayFilter, ReplayFilterError, replay, summary_lines

    try:
        chosen = ReplayFilter.of(
            since=datetime.fromisoformat(since) if since else None,
            until=datetime.fromisoformat(until) if until else None,
            case_id=UUID(case_id) if case_id else None,
            types=types or (),
        )
    except (ValueError, ReplayFilterError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    projection = _or_exit(lambda: asyncio.run(replay(_nats_url(), chosen)))
    if as_json:
        typer.echo(json.dumps(projection.summary(with_cases=True), indent=2))
        return
    for line in summary_lines(projection, case_id=chosen.case_id):
        typer.echo(line)


def _moment(option: str, given: str | None) -> datetime | None:
    """``--since``/``--until``: an ISO time with a zone, or a day (its start in Amsterdam)."""
    from datetime import date, time

    from kring.analytics.facts import ZONE

    if given is None:
        return None
    try:
        if len(given) == 10:
            return datetime.combine(date.fromisoformat(given), time(), tzinfo=ZONE)
        moment = datetime.fromisoformat(given)
    except ValueError:
        _bad_input(
            f"{option} {given!r} is not a time: give e.g. 2026-03-01 or 2026-03-01T09:00+01:00"
        )
    if moment.tzinfo is None:
        _bad_input(f"{option} {given!r} has no zone: give e.g. 2026-03-01T09:00+01:00")
    return moment


def _bad_input(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _choice(option: str, given: str, choices: type[StrEnum]) -> Any:
    try:
        return choices(given)
    except ValueError:
        known = ", ".join(c.value for c in choices)
        _bad_input(f"{option} {given!r} is not one of {known}")


@app.command("export")
def export_stream(
    to: Annotated[Path, typer.Option("--to", help="The export's folder (made on the first run).")],
    export_format: Annotated[
        str, typer.Option("--format", help="parquet, csv or duckdb.")
    ] = "parquet",
    since: Annotated[
        str | None, typer.Option(help="A day or an ISO time with zone; from here.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="A day or an ISO time with zone; before here.")
    ] = None,
    organisations: Annotated[
        bool,
        typer.Option(
            "--organisations/--no-organisations",
            envvar="KRING_EXPORT_ORGANISATIONS",
            help="Also export the organisations cases name (left out by default).",
        ),
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option(help="The pseudonym key (default: pseudonym.key in the folder)."),
    ] = None,
) -> None:
    """Export the KRING stream as pseudonymised tables (cases, stage_times, events,
    attendance, outcomes, ratings), by month; each run goes on from where the last one got to
    and removes cases erased since."""
    import asyncio
    import sys

    from kring.analytics.export import ExportError, ExportFormat, ExportRequest, export
    from kring.analytics.stream import NoStreamError

    request = ExportRequest(
        target=to,
        format=_choice("--format", export_format, ExportFormat),
        since=_moment("--since", since),
        until=_moment("--until", until),
        organisations=organisations,
        key_file=key_file,
    )
    show_progress = sys.stderr.isatty()

    async def run() -> Any:
        connection = await connect_nats(_nats_url())
        bar: Any = None
        done = 0

        def progress(read: int, total: int) -> None:
            nonlocal bar, done
            if not show_progress or total < 10_000:
                return
            if bar is None:
                bar = typer.progressbar(length=total, label="exporting", file=sys.stderr)
                bar.__enter__()
            bar.update(read - done)
            done = read

        try:
            return await export(connection, request, progress=progress)
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
            await connection.close()

    try:
        result = _or_exit(lambda: asyncio.run(run()))
    except ExportError as error:
        _bad_input(str(error))
    except NoStreamError as error:
        typer.echo(f"error: {error} ({_nats_url()}): has Kring run there?", err=True)
        raise typer.Exit(1) from None
    typer.echo(result.summary())
    typer.echo(f"tables in {to / 'current'}")


@app.command("report")
def report_stream(
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    since: Annotated[
        str | None, typer.Option(help="Requests made from this day or ISO time with zone.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Requests made before this day or ISO time with zone.")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Also by model, region or month.")] = None,
) -> None:
    """Every question the field asks of its requests, as one HTML page with charts (and the
    charts as PNG files beside it), the published figures next to ours; read from the KRING
    stream."""
    import asyncio

    from kring.analytics.figures import GroupBy
    from kring.analytics.report import ReportError, ReportRequest, make_report
    from kring.analytics.stream import NoStreamError

    request = ReportRequest(
        out=out,
        since=_moment("--since", since),
        until=_moment("--until", until),
        by=_choice("--by", by, GroupBy) if by is not None else None,
    )
    try:
        request.check()
    except ReportError as error:
        _bad_input(str(error))

    async def run() -> Any:
        connection = await connect_nats(_nats_url())
        try:
            return await make_report(connection, request)
        finally:
            await connection.close()

    try:
        written = _or_exit(lambda: asyncio.run(run()))
    except ReportError as error:
        _bad_input(str(error))
    except NoStreamError as error:
        typer.echo(f"error: {error} ({_nats_url()}): has Kring run there?", err=True)
        raise typer.Exit(1) from None
    figures = written.answer.overall
    typer.echo(
        f"{figures.requests} request(s), {written.answer.events} event(s) read:"
        f" {written.html} and {len(written.pngs)} chart(s) beside it"
    )


dlq_app = typer.Typer(help="Dead letters: messages a consumer could not process.")
app.add_typer(dlq_app, name="dlq")


def _nats_url() -> str:
    return os.environ.get("KRING_NATS_URL", "nats://127.0.0.1:4222")


@dlq_app.command("list")
def dlq_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for machines.")] = False,
) -> None:
    """Every parked message with its consumer and reason, and counts per reason."""
    import asyncio
    from collections import Counter

    from kring.dlq import list_dead_letters

    letters = _or_exit(lambda: asyncio.run(list_dead_letters(_nats_url())))
    if as_json:
        typer.echo(json.dumps([letter.as_dict() for letter in letters], indent=2))
        return
    for letter in letters:
        origin = f"{letter.origin}:{letter.position}" if letter.origin else "-"
        typer.echo(
            f"{letter.sequence:>6}  {letter.parked_at:%Y-%m-%d %H:%M:%S}  {letter.consumer:<28}"
            f" {letter.reason:<34} {origin:<20} {letter.detail[:80]}"
        )
    counts = Counter((letter.consumer, letter.reason) for letter in letters)
    typer.echo(f"{len(letters)} dead letter(s)")
    for (consumer, reason), count in sorted(counts.items()):
        typer.echo(f"  {count:>5}  {consumer}  {reason}")


@dlq_app.command("replay")
def dlq_replay(
    sequences: Annotated[
        list[int] | None, typer.Argument(help="Dead-letter sequence numbers (from `list`).")
    ] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
) -> None:
    """Have the service that parked each dead letter apply its original message (read from
    KRING) again; remove the letters applied. Exit 1 if any could not be."""
    import asyncio

    from kring.dlq import list_dead_letters, replay

    if not sequences and not replay_all:
        typer.echo("error: name the sequence numbers to replay, or --all", err=True)
        raise typer.Exit(2)

    async def run() -> list[Replayed]:
        chosen = sequences or [letter.sequence for letter in await list_dead_letters(_nats_url())]
        return await replay(_nats_url(), chosen)

    results = _or_exit(lambda: asyncio.run(run()))
    done = [r for r in results if r.done]
    typer.echo(f"replayed {len(done)} dead letter(s): {' '.join(str(r.sequence) for r in done)}")
    for result in results:
        if not result.done:
            typer.echo(f"  {result.sequence}: {result.outcome}: {result.detail}", err=True)
    if len(done) != len(results):
        raise typer.Exit(1)


@app.command("nats-credentials")
def nats_credentials(
    folder: Annotated[Path, typer.Argument(help="Where the passwords are kept (0600 files).")],
) -> None:
    """Make a NATS password for every identity that has none in FOLDER
    (``<identity>.password``); `kring run` does this in ``<data>/keys/nats``."""
    from kring.natsconf import CredentialsError, ensure_credentials

    try:
        made = ensure_credentials(folder)
    except (CredentialsError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{len(made)} NATS identities have passwords in {folder}: {', '.join(made)}")


@app.command("nats-authorization")
def nats_authorization(
    folder: Annotated[Path, typer.Argument(help="The passwords (``<identity>.password``).")],
    out: Annotated[
        Path | None,
        typer.Option(help="Write the block to this file (readable by all: it holds hashes only)."),
    ] = None,
) -> None:
    """Print nats-server's ``authorization`` block (bcrypt hashes, every identity's
    permissions) for the passwords in FOLDER, to include in a deployment's server config."""
    from kring.natsconf import (
        CredentialsError,
        read_credentials,
        render,
        write_shared_authorization,
    )

    try:
        block = render(read_credentials(folder))
    except CredentialsError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if out is None:
        typer.echo(block, nl=False)
        return
    try:
        write_shared_authorization(out, block)
    except OSError as error:
        typer.echo(f"error: cannot write {out}: {error.strerror}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"the authorization block is in {out}")


@app.command()
def rebuild(
    service: Annotated[
        str, typer.Argument(help="intake, coordination, plans, followup or partners.")
    ],
) -> None:
    """Build SERVICE's read model (its lists) anew from its log, with progress. Run it with the
    service's settings (KRING_STORE, KRING_DATA_DIR, KRING_POSTGRES_URL, KRING_CIPHER_KEY; beside
    `kring run`, KRING_DATA_DIR is enough). The service keeps serving its live tables meanwhile;
    interrupted, it resumes when run again."""
    import time

    from kring.rebuild import progress_line
    from kring.rebuild import rebuild as run_rebuild
    from shared.views import Progress

    shown = [0.0]

    def report(progress: Progress) -> None:
        if time.monotonic() - shown[0] >= 1.0 or progress.position >= progress.end:
            shown[0] = time.monotonic()
            typer.echo(progress_line(service, progress))

    with _store_command(service):
        done = run_rebuild(service, report)
    typer.echo(f"{service}: rebuilt at position {done.position:,} in {done.seconds:.1f} s")


@app.command()
def rekey(
    service: Annotated[
        str, typer.Argument(help="intake, coordination, plans, followup or partners.")
    ],
) -> None:
    """Seal SERVICE's store under its new key: what it holds under KRING_CIPHER_KEY_FALLBACK
    (the key KRING_CIPHER_KEY replaces) is sealed again under KRING_CIPHER_KEY, with progress.
    Run it with the service's settings, both keys included, once every replica writes under the
    new key; the service keeps running meanwhile, and interrupted, it goes on when run again.
    Then the fallback can go (docs/operations.md, "Keys and their rotation")."""
    import time

    from kring.rebuild import rekey as run_rekey
    from kring.rebuild import rekey_line
    from shared.at_rest import RekeyProgress

    shown = [0.0]

    def report(progress: RekeyProgress) -> None:
        if time.monotonic() - shown[0] >= 1.0 or progress.done:
            shown[0] = time.monotonic()
            typer.echo(rekey_line(service, progress))

    with _store_command(service):
        done = run_rekey(service, report)
    typer.echo(
        f"{service}: every row under the new key ({done.resealed:,} sealed again); "
        "KRING_CIPHER_KEY_FALLBACK can go"
    )


@contextlib.contextmanager
def _store_command(service: str) -> Iterator[None]:
    """A command on SERVICE's store, run where the service runs: one line and an exit code for
    what it cannot do (an unknown service, a setting, a store away), never a trace."""
    from pydantic import ValidationError

    from kring.rebuild import SERVICES, RebuildError
    from shared.settings import SettingError, problem_line
    from shared.store import STORE_UNAVAILABLE, StoreConfigError

    if service not in SERVICES:
        typer.echo(f"error: no service {service!r}: one of {', '.join(SERVICES)}", err=True)
        raise typer.Exit(2)
    try:
        yield
    except (RebuildError, StoreConfigError, SettingError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except ValidationError as error:
        typer.echo(f"error: {problem_line(error)}", err=True)
        raise typer.Exit(2) from None
    except STORE_UNAVAILABLE as error:
        typer.echo(f"error: cannot reach the {service} store ({type(error).__name__})", err=True)
        raise typer.Exit(1) from None


partners_app = typer.Typer(
    help="Partner organisations: add, list, rotate, revoke; what each was sent.",
    no_args_is_help=True,
)
app.add_typer(partners_app, name="partners")

DataDir = Annotated[
    Path,
    typer.Option(envvar="KRING_DATA_DIR", help="kring run's data folder (its NATS and issuer)."),
]
NatsKeys = Annotated[
    Path | None,
    typer.Option(help="The NATS passwords' folder (default: the data folder's keys/nats)."),
]
NoReload = Annotated[
    bool,
    typer.Option(
        "--no-reload",
        help="Do not write nats-server's authorization block nor reload it (a deployment"
        " renders and reloads its own way).",
    ),
]
OAuthClient = Annotated[
    bool,
    typer.Option(
        help="Make the partner's OAuth client for the development issuer (off: make it in"
        " your own issuer)."
    ),
]
Out = Annotated[Path, typer.Option(help="Where to write the partner's credentials file.")]


def _places(data_dir: Path, nats_keys: Path | None, no_reload: bool, oauth: bool) -> Any:
    from kring.issuer import clients_dir
    from kring.natsconf import keys_dir
    from kring.partners import Places

    return Places(
        nats_keys=nats_keys or keys_dir(data_dir),
        nats_config=None if no_reload else data_dir / "nats",
        clients=clients_dir(data_dir) if oauth else None,
    )


def _partners_call(method: str, path: str, body: Any = None) -> Any:
    """One call to the partners service as the signed-in operator; one line and exit 2 for a
    refusal of the input, 1 for anything else that fails."""
    from kring.client import detail_of

    client = KringClient()
    try:
        answer = client.request("partners", method, path, json=body)
    except (ServiceUnavailableError, AccessError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()
    if answer.status_code in (404, 409, 422):
        typer.echo(f"error: {detail_of(answer)}", err=True)
        raise typer.Exit(2)
    if answer.status_code >= 400:
        typer.echo(f"error: {answer.status_code} {detail_of(answer)}", err=True)
        raise typer.Exit(1)
    return answer.json()


def _handover(
    organisation: str, name: str, password: str, oauth: Any, webhook: Any, out: Path
) -> Path:
    from kring.client import issuer_url, service_url
    from kring.partners import credentials, write_credentials

    document = credentials(
        organisation=organisation,
        name=name,
        nats_url=_nats_url(),
        password=password,
        oauth=oauth,
        token_url=f"{issuer_url()}/token",
        plans_url=service_url("plans"),
        partners_url=service_url("partners"),
        webhook=webhook,
    )
    try:
        return write_credentials(out, organisation, document)
    except OSError as error:
        typer.echo(f"error: cannot write the credentials in {out}: {error.strerror}", err=True)
        raise typer.Exit(1) from None


@partners_app.command("add")
def partners_add(
    organisation: Annotated[str, typer.Argument(help="Its id, e.g. jeugdzorg-utrecht.")],
    name: Annotated[str, typer.Option(help="How the organisation is called.")],
    webhook: Annotated[
        str | None, typer.Option(help="Its webhook endpoint (https), for a partner without NATS.")
    ] = None,
    data_dir: DataDir = Path("data"),
    nats_keys_dir: NatsKeys = None,
    no_reload: NoReload = False,
    oauth_client: OAuthClient = True,
    out: Out = Path("."),
) -> None:
    """Register a partner organisation and make its credentials: a NATS identity that reads
    only its own feed, an OAuth client for fetching its copies, a webhook secret; all in one
    file (readable by you only) to hand to the partner."""
    from kring.partners import (
        PartnerSetupError,
        apply_to_nats,
        check_organisation,
        forget,
        nats_password,
    )
    from kring.partners import oauth_client as make_client

    places = _places(data_dir.resolve(), nats_keys_dir, no_reload, oauth_client)
    try:
        check_organisation(organisation)
        # NATS first: once registered, the partners service makes the partner's feed at once,
        # and NATS must already let it.
        known = (places.nats_keys / f"partner-{organisation}.password").exists()
        password = nats_password(places, organisation)
        said = apply_to_nats(places, organisation)
    except PartnerSetupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    body = {"organisation": organisation, "name": name, "webhook_url": webhook}
    try:
        registered = _partners_call("POST", "/partners", body)
    except typer.Exit:
        if not known:  # nothing of it is left behind
            forget(places, organisation)
            apply_to_nats(places)
        raise
    oauth = make_client(places, organisation)
    hook = {"url": webhook, "secret": registered["webhook_secret"]} if webhook else None
    path = _handover(organisation, name, password, oauth, hook, out)
    typer.echo(
        f"partner {organisation} ({name}) registered; feed {registered['partner']['stream']}"
    )
    typer.echo(said)
    if oauth is None:
        typer.echo("OAuth: make its client in your issuer (docs/partners.md, 'Your own issuer')")
    typer.echo(f"its credentials are in {path} (readable by you only): hand them over safely")


@partners_app.command("list")
def partners_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for machines.")] = False,
) -> None:
    """Every partner, present and past."""
    found = _partners_call("GET", "/partners?limit=500")["items"]
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    for partner in found:
        state = "active" if partner["active"] else f"revoked {partner['revoked_at']}"
        hook = partner["webhook"]
        webhook = "NATS only"
        if hook:
            webhook = hook["url"] + (
                "" if hook["enabled"] else f" (disabled: {hook['disabled_because']})"
            )
        typer.echo(f"{partner['organisation']:<32} {partner['name']:<32} {state:<10} {webhook}")
    typer.echo(f"{len(found)} partner(s)")


@partners_app.command("revoke")
def partners_revoke(
    organisation: Annotated[str, typer.Argument(help="Its id.")],
    data_dir: DataDir = Path("data"),
    nats_keys_dir: NatsKeys = None,
    no_reload: NoReload = False,
) -> None:
    """No longer a partner: nothing more is shared with it; its NATS identity and OAuth client
    are removed (its connections dropped at the reload)."""
    from kring.partners import PartnerSetupError, apply_to_nats, forget

    places = _places(data_dir.resolve(), nats_keys_dir, no_reload, True)
    _partners_call("POST", f"/partners/{organisation}/revoke")
    try:
        forget(places, organisation)
        said = apply_to_nats(places, organisation)
    except PartnerSetupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"partner {organisation} revoked")
    typer.echo(said)


@partners_app.command("rotate")
def partners_rotate(
    organisation: Annotated[str, typer.Argument(help="Its id.")],
    data_dir: DataDir = Path("data"),
    nats_keys_dir: NatsKeys = None,
    no_reload: NoReload = False,
    oauth_client: OAuthClient = True,
    out: Out = Path("."),
) -> None:
    """New credentials for a partner: a NATS password (the old one stops at the reload), an
    OAuth client secret, and a webhook secret (the old one signs beside it for a day)."""
    from kring.partners import PartnerSetupError, apply_to_nats, nats_password
    from kring.partners import oauth_client as make_client

    places = _places(data_dir.resolve(), nats_keys_dir, no_reload, oauth_client)
    partner = _partners_call("GET", f"/partners/{organisation}")
    if not partner["active"]:
        typer.echo(f"error: {organisation} was revoked: add it again", err=True)
        raise typer.Exit(2)
    hook = None
    if partner["webhook"]:
        rotated = _partners_call("POST", f"/partners/{organisation}/webhook/rotate")
        hook = {"url": partner["webhook"]["url"], "secret": rotated["webhook_secret"]}
    try:
        password = nats_password(places, organisation, rotate=True)
        said = apply_to_nats(places, organisation)
        oauth = make_client(places, organisation)
    except PartnerSetupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    path = _handover(organisation, partner["name"], password, oauth, hook, out)
    typer.echo(f"partner {organisation}: new credentials")
    typer.echo(said)
    if hook:
        typer.echo("webhook: the old secret signs beside the new one for a day")
    typer.echo(f"its credentials are in {path} (readable by you only): hand them over safely")


@partners_app.command("deliveries")
def partners_deliveries(
    organisation: Annotated[str, typer.Argument(help="Its id.")],
    case_id: Annotated[str | None, typer.Option("--case", help="One case id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for machines.")] = False,
) -> None:
    """Everything sent to a partner, oldest first, with each webhook's status."""
    query = f"?limit=500{f'&case_id={case_id}' if case_id else ''}"
    rows: list[Any] = []
    path = f"/partners/{organisation}/deliveries{query}"
    while True:
        answer = _partners_call("GET", path)
        rows += answer["items"]
        if not answer["next"]:
            break
        path = f"/partners/{organisation}/deliveries{query}&after={answer['next']}"
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        error = f" ({row['last_error']})" if row["last_error"] else ""
        typer.echo(
            f"{row['issued_at']:<33} {row['event_id']}  {row['case_id']}  "
            f"{row['type']:<34} webhook {row['webhook_status']:<9} {row['attempts']} attempt(s)"
            f"{error}"
        )
    typer.echo(f"{len(rows)} notification(s)")


@partners_app.command("resend")
def partners_resend(
    organisation: Annotated[str, typer.Argument(help="Its id.")],
    event_id: Annotated[str, typer.Argument(help="The notification's id (from `deliveries`).")],
) -> None:
    """Send one notification to the partner's webhook again (the same id)."""
    row = _partners_call("POST", f"/partners/{organisation}/deliveries/{event_id}/resend")
    typer.echo(f"{row['event_id']}: webhook {row['webhook_status']}")


@partners_app.command("replay")
def partners_replay(
    organisation: Annotated[str, typer.Argument(help="Its id.")],
    since: Annotated[str, typer.Option(help="ISO time with zone: from here.")],
) -> None:
    """Send every notification issued since a time to the partner's webhook again."""
    from datetime import datetime

    try:
        when = datetime.fromisoformat(since)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        typer.echo(
            "error: --since is an ISO time with its zone, e.g. 2026-03-01T00:00:00+01:00", err=True
        )
        raise typer.Exit(2)
    answer = _partners_call("POST", f"/partners/{organisation}/replay", {"since": when.isoformat()})
    typer.echo(f"{len(answer['replayed'])} notification(s) to be sent again")


def _or_exit(call: Callable[[], T]) -> T:
    from shared.stream_read import DirectGetError

    REFUSALS.clear()
    try:
        return call()
    except NatsCredentialsError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except (OSError, nats.errors.Error, DirectGetError, TimeoutError) as error:
        if REFUSALS:
            typer.echo(f"error: NATS refused: {REFUSALS[-1]}", err=True)
        elif "Authorization Violation" in str(error):
            typer.echo(
                f"error: NATS at {_nats_url()} refused the credentials (KRING_NATS_USER /"
                " KRING_NATS_PASSWORD, or the data folder's)",
                err=True,
            )
        elif isinstance(error, ssl.SSLCertVerificationError):
            typer.echo(
                f"error: NATS at {_nats_url()} has a certificate this machine does not trust"
                " (KRING_NATS_TLS_CA_FILE names its CA)",
                err=True,
            )
        else:
            typer.echo(
                f"error: cannot reach NATS at {_nats_url()} ({type(error).__name__})", err=True
            )
        raise typer.Exit(1) from None


def main() -> None:
    """``kring``: a usage mistake (an unknown option, a value not among the choices, a missing
    argument) is one line on stderr and exit code 2, like every other ordinary mistake, not a
    box of usage and help. (Typer raises click's usage errors, from click or from the copy of
    it Typer ships, by version: they are told by what they carry.)"""
    try:
        code = app(standalone_mode=False, prog_name="kring")
    except Exception as error:
        context = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError" and context is not None:
            typer.echo(context.get_help(), err=True)
            raise SystemExit(2) from None
        if getattr(error, "exit_code", None) == 2 and hasattr(error, "format_message"):
            command = getattr(context, "command_path", "") or "kring"
            typer.echo(f"error: {command}: {error.format_message()}", err=True)
            raise SystemExit(2) from None
        if type(error).__name__ == "Abort":
            raise SystemExit(1) from None
        raise
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
