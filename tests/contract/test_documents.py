"""Every service's AsyncAPI document, as it serves it, against the code that makes the wire: each
message's example is what ``encode`` makes and validates against the documented payload and
headers; every integration event is sent in its origin's document and received, with the same
payload, where it is consumed; the partners service documents each partner's feed and its
webhooks; nothing is documented that is not sent (no ``correlation_id``, no empty payload). Then
the AsyncAPI CLI (npm ``@asyncapi/cli``, installed by ``make install``) validates each."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shared.events import EVENT_CLASSES
from shared.partner_feed import PARTNER_EVENT_CLASSES
from tests.contract.documents import check, dump, messages, operated, resolve, served

CLI = Path(__file__).resolve().parent / "asyncapi" / "node_modules" / ".bin" / "asyncapi"


@pytest.fixture(scope="module")
async def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return await served(tmp_path_factory.mktemp("asyncapi"))


def test_every_example_validates_against_its_own_payload_and_headers(
    documents: dict[str, dict[str, Any]],
) -> None:
    checked = 0
    for document in documents.values():
        for _, message in messages(document):
            assert message["payload"] and message["headers"]
            for example in message["examples"]:
                check(document, message["payload"], example["payload"])
                check(document, message["headers"], example["headers"])
                checked += 1
    assert checked >= len(EVENT_CLASSES) + 2 * len(PARTNER_EVENT_CLASSES)


def test_every_event_is_sent_by_its_origin_and_received_where_it_is_consumed_alike(
    documents: dict[str, dict[str, Any]],
) -> None:
    for event_class in EVENT_CLASSES:
        origin = documents[event_class.origin]
        [sent] = [
            k
            for k in operated(origin, "send")
            if origin["components"]["messages"][k]["name"] == event_class.type_name()
        ]
        payload = resolve(origin, origin["components"]["messages"][sent]["payload"])
        assert payload["properties"]["type"] == {"const": event_class.type_name()}
        for service, document in documents.items():
            for key in operated(document, "receive"):
                received = document["components"]["messages"][key]
                if received["name"] == event_class.type_name():
                    assert resolve(document, received["payload"]) == payload, service
    followed = {
        documents["followup"]["components"]["messages"][k]["name"]
        for k in operated(documents["followup"], "receive")
    }
    assert "nl.kring.plan-distributed.v1" in followed


def test_the_partners_document_names_each_partners_feed_and_the_webhooks(
    documents: dict[str, dict[str, Any]],
) -> None:
    document = documents["partners"]
    addresses = {c["address"] for c in document["channels"].values()}
    for event_class in PARTNER_EVENT_CLASSES:
        assert f"kring-partner.{{organisation}}.{event_class.name}" in addresses
    assert None in addresses  # the partner's own webhook URL
    feed = [
        c
        for c in document["channels"].values()
        if c["address"] and "{organisation}" in c["address"]
    ]
    assert {c["x-kring-stream"] for c in feed} == {"KRING_PARTNER_{organisation}"}
    sent = [document["components"]["messages"][k] for k in operated(document, "send")]
    webhook = [m for m in sent if m["contentType"] == "application/cloudevents+json"]
    assert {m["name"] for m in webhook} == {c.type_name() for c in PARTNER_EVENT_CLASSES}
    headers = resolve(document, webhook[0]["headers"])
    assert set(headers["required"]) == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
    }


def test_nothing_is_documented_that_is_never_sent(documents: dict[str, dict[str, Any]]) -> None:
    text = json.dumps(documents)
    assert "correlation_id" not in text and "EmptyPayload" not in text
    for document in documents.values():
        for channel in document["channels"].values():
            if channel["address"] and channel["address"].startswith("kring."):
                assert channel["x-kring-stream"] == "KRING"


def test_the_asyncapi_cli_validates_every_document(
    documents: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    assert CLI.exists(), f"{CLI} is missing: `make install` installs the AsyncAPI CLI"
    metrics = tmp_path / "asyncapi-analytics.json"  # no tracking: nothing leaves this machine
    metrics.write_text(
        json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "kring"})
    )
    env = os.environ | {
        "ASYNCAPI_METRICS_CONFIG_PATH": str(metrics),
        "SUPPRESS_NO_CONFIG_WARNING": "1",
        "NODE_ENV": "",
    }

    def validate(path: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(CLI), "validate", str(path), "--fail-severity=warn"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=tmp_path,
        )

    def valid(path: Path, run: subprocess.Popen[str]) -> None:
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0, f"{path.name}:\n{output}"
        assert "is valid" in output, output

    # The CLI makes a log folder inside its own package on its first run, without care for a
    # second run making it at the same moment (EEXIST): the first document is checked alone,
    # the others side by side once the folder exists.
    first, *rest = dump(documents, tmp_path / "documents")
    valid(first, validate(first))
    runs = {path: validate(path) for path in rest}
    for path, run in runs.items():
        valid(path, run)
