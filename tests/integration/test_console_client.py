"""The console's one client of the services, against a real HTTP server (a thread) that answers
as the services do and as they will: a list as an array today, page by page (``{items, next,
total}``, ``?limit=&after=``) once lists are paginated; every refusal as a typed error with the
service's reason."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from services.console.client import (
    ConflictError,
    InvalidError,
    RefusedError,
    Services,
    SignedOutError,
    UnavailableError,
)
from tests.ports import free_port

ROWS = [{"case_id": str(uuid.uuid4()), "stage": "accepted"} for _ in range(7)]
CASE = uuid.uuid4()


class Answers(BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, list[str]], str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        self.seen.append((parts.path, query, self.headers.get("authorization", "")))
        if parts.path == "/cases":  # today's shape: an array
            self.answer(200, ROWS)
        elif parts.path == "/paged/cases":  # issue 15's: pages of three, an opaque cursor
            start = int(query.get("after", ["0"])[0].removeprefix("c"))
            page = ROWS[start : start + 3]
            following = f"c{start + 3}" if start + 3 < len(ROWS) else None
            self.answer(200, {"items": page, "next": following, "total": len(ROWS)})
        elif parts.path == f"/cases/{CASE}":
            self.answer(403, {"detail": "reading the case needs the role regional_manager"})
        elif parts.path.startswith("/expired/"):
            self.answer(401, {"detail": "the token has expired"})
        else:
            self.answer(500, {"detail": "internal error"})

    def do_POST(self) -> None:
        if self.path.endswith("/clarify"):
            self.answer(
                422,
                {
                    "detail": [
                        {
                            "type": "missing",
                            "loc": ["body", "funding", "payer"],
                            "msg": "Field required",
                        }
                    ]
                },
            )
        else:
            self.answer(409, {"detail": "the request was already accepted"})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()


def services(url: str, paged: bool = False) -> Services:
    base = f"{url}/paged" if paged else url
    return Services({"intake": base, "coordination": url, "plans": url, "followup": url})


async def test_a_list_is_read_whole_in_either_shape_with_the_person_s_token(server: str) -> None:
    for paged in (False, True):
        client = services(server, paged)
        Answers.seen.clear()
        rows = await client.requests("the-token", stage="accepted", model="")
        await client.close()
        assert rows == ROWS
        assert all(auth == "Bearer the-token" for _, _, auth in Answers.seen)
        assert all(q.get("stage") == ["accepted"] and "model" not in q for _, q, _ in Answers.seen)
    # Paged: every page asked for once, each after the cursor the one before gave.
    assert [q.get("after") for _, q, _ in Answers.seen] == [None, ["c3"], ["c6"]]


async def test_every_refusal_is_a_typed_error_with_the_service_s_reason(server: str) -> None:
    client = services(server)
    with pytest.raises(RefusedError, match="needs the role regional_manager") as refused:
        await client.request("t", CASE)
    assert (refused.value.service, refused.value.status) == ("intake", 403)
    with pytest.raises(InvalidError) as invalid:
        await client.clarify("t", CASE, {})
    assert invalid.value.fields == [("funding.payer", "Field required")]
    with pytest.raises(ConflictError, match="already accepted"):
        await client.accept("t", CASE)
    with pytest.raises(UnavailableError):
        await client.follow_up("t", uuid.uuid4())  # a 500: shown as unavailable, no internals
    await client.close()
    expired = Services({"intake": f"{server}/expired"})
    with pytest.raises(SignedOutError):
        await expired.request("t", CASE)
    await expired.close()
    nobody = Services({s: f"http://127.0.0.1:{free_port()}" for s in ("intake",)})
    with pytest.raises(UnavailableError, match="intake does not answer"):
        await nobody.requests("t")
    await nobody.close()
