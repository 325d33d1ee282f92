"""Every service's AsyncAPI document as the service serves it (``GET /asyncapi.json``), and the
checks of a real message against the document that describes it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from services.coordination.bootstrap import build as build_coordination
from services.coordination.settings import CoordinationSettings
from services.followup.bootstrap import build as build_followup
from services.followup.settings import FollowupSettings
from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from services.partners.bootstrap import build as build_partners
from services.partners.settings import PartnersSettings
from services.plans.bootstrap import build as build_plans
from services.plans.settings import PlansSettings
from shared.runtime import ServiceDefinition, build_service

BUILDERS: dict[str, tuple[Callable[..., ServiceDefinition], Any]] = {
    "intake": (build_intake, IntakeSettings),
    "coordination": (build_coordination, CoordinationSettings),
    "plans": (build_plans, PlansSettings),
    "followup": (build_followup, FollowupSettings),
    "partners": (build_partners, PartnersSettings),
}
#: Headers a direct get adds to a stored message in its answer: the server's, never sent.
READ_HEADERS = frozenset(
    {
        "Nats-Stream",
        "Nats-Sequence",
        "Nats-Time-Stamp",
        "Nats-Subject",
        "Nats-Num-Pending",
        "Nats-Last-Sequence",
    }
)


async def served(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Each service's document, fetched from its own HTTP API (no NATS needed to serve it)."""
    documents = {}
    for name, (build, settings_class) in BUILDERS.items():
        settings = settings_class(nats_user=name, nats_password="x" * 40, data_dir=data_dir / name)
        definition = build(settings)
        try:
            service = build_service(definition)
            transport = httpx.ASGITransport(app=service.api)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
                answer = await http.get("/asyncapi.json")
                assert answer.status_code == 200, answer.text
                documents[name] = answer.json()
        finally:
            definition.app.close()
    return documents


def messages(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from document["components"]["messages"].items()


def resolve(document: dict[str, Any], ref: dict[str, str]) -> dict[str, Any]:
    found: Any = document
    for part in ref["$ref"].removeprefix("#/").split("/"):
        found = found[part]
    return dict(found)


def check(document: dict[str, Any], schema_ref: dict[str, str], instance: Any) -> None:
    """Validate ``instance`` against a schema of the document (its references resolved in it)."""
    root = {"$ref": schema_ref["$ref"], "components": document["components"]}
    jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(instance)


def operated(document: dict[str, Any], action: str) -> list[str]:
    """The components' message keys of every ``send`` (or ``receive``) operation."""
    keys = []
    for operation in document["operations"].values():
        if operation["action"] != action:
            continue
        for ref in operation["messages"]:
            channel, _, message = ref["$ref"].removeprefix("#/channels/").partition("/messages/")
            target = document["channels"][channel]["messages"][message]["$ref"]
            keys.append(target.removeprefix("#/components/messages/"))
    return keys


def dump(documents: dict[str, dict[str, Any]], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, document in documents.items():
        path = folder / f"{name}.asyncapi.json"
        path.write_text(json.dumps(document, indent=2))
        paths.append(path)
    return paths
