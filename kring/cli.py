"""``kring``: run, demo, audit."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from kring.client import KringClient, ServiceUnavailableError

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
    region: Annotated[str, typer.Option(help="Region of the sample case.")] = "Utrecht",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each event.")] = 120.0,
) -> None:
    """Walk one sample case through the running system, printing each step and event."""
    import asyncio

    from kring.demo import run_demo

    nats_url = os.environ.get("KRING_NATS_URL", "nats://127.0.0.1:4222")
    try:
        asyncio.run(run_demo(nats_url, region=region, patience=timeout))
    except ServiceUnavailableError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except TimeoutError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


@app.command()
def audit(
    case_id: Annotated[str, typer.Argument(help="The case id (from intake).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array, for machines.")] = False,
) -> None:
    """Every stored event of one case across all services, in order."""
    client = KringClient()
    try:
        entries = client.history(case_id)
    except ServiceUnavailableError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()
    if not entries:
        typer.echo(f"error: no service knows case {case_id}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    for entry in entries:
        actor = entry.get("actor") or {}
        who = f"{actor.get('id', '?')} ({actor.get('role', '?')})"
        typer.echo(
            f"{entry['time']:<33} {entry['service']:<13} {entry['aggregate']}.{entry['type']:<24}"
            f" {who}"
        )


if __name__ == "__main__":
    app()
