"""The permission table itself: the rules a new identity or subject must keep, checked on the
table (the integration tests try them on a real server), and the credentials made for it."""

from __future__ import annotations

import importlib
import stat
from pathlib import Path

import pytest

from kring.natsconf import (
    CredentialsError,
    ensure_credentials,
    read_credentials,
    render,
    server_config,
)
from shared.permissions import (
    ADMIN,
    SERVICES,
    claims_answered,
    follows,
    identities,
    inbox_prefix,
    markdown_table,
    names,
)

README = Path(__file__).resolve().parents[2] / "README.md"
ADMINISTRATION = ("STREAM.UPDATE", "STREAM.DELETE", "STREAM.PURGE", "CONSUMER.DELETE")


def test_each_service_follows_what_the_table_says() -> None:
    for service in SERVICES:
        bus = importlib.import_module(f"services.{service}.bus")
        assert follows(service) == bus.FOLLOWS


def test_only_a_service_publishes_events_and_only_its_own() -> None:
    for who in identities():
        events = [s for s in who.publish if s.startswith("kring.")]
        if who.name in SERVICES:
            assert events == [f"kring.{who.name}.>"]
        else:
            assert events == [], who.name
        assert ">" not in who.publish and "kring.>" not in who.publish, who.name


def test_only_admin_administers_streams_and_consumers() -> None:
    for who in identities():
        if who.name == ADMIN:
            assert "$JS.API.>" in who.publish
            continue
        for subject in who.publish:
            assert not any(action in subject for action in ADMINISTRATION), (who.name, subject)
            assert subject != "$JS.API.>"


def test_no_identity_but_admin_may_create_a_consumer_it_does_not_name() -> None:
    """The unnamed create (``$JS.API.CONSUMER.CREATE.<stream>``) and the legacy durable create
    do not pin a name and a filter: either would let its holder rewrite others' consumers."""
    for who in identities():
        if who.name == ADMIN:
            continue
        for subject in who.publish:
            if ".CONSUMER.CREATE." in subject:
                _, _, rest = subject.partition(".CONSUMER.CREATE.")
                _, consumer, filter_subject = rest.split(".", 2)
                assert (consumer, filter_subject) in who.consumers, subject
                assert "*" not in consumer and ">" not in consumer, subject
            assert "DURABLE.CREATE" not in subject, (who.name, subject)
            assert not subject.endswith(".CONSUMER.CREATE.KRING"), (who.name, subject)


def test_each_identity_reads_only_under_its_own_inbox() -> None:
    for who in identities():
        mine = f"{inbox_prefix(who.name)}.>"
        assert who.subscribe[0] == mine
        others = [
            s
            for s in who.subscribe[1:]
            if not s.startswith("kring-ops.replay.") and s not in claims_answered(who.name)
        ]
        assert others == [], who.name
        assert all(not s.startswith("_INBOX") or s == mine for s in who.subscribe)


def test_a_claim_check_is_asked_by_its_asker_alone_and_answered_by_its_owner_alone() -> None:
    """Plans asks intake for a case's clarification; nobody else may ask or answer, and the
    subject is outside every stream (a request there is never stored)."""
    subject = "kring-claim.intake.clarification"
    askers = [who.name for who in identities() if any(_covers(p, subject) for p in who.publish)]
    answerers = [
        who.name for who in identities() if any(_covers(p, subject) for p in who.subscribe)
    ]
    assert askers == ["plans"] and answerers == ["intake"]
    assert not subject.startswith(("kring.", "kring-dlq."))


def _covers(pattern: str, subject: str) -> bool:
    """Whether a NATS subject pattern (``*``, ``>``) matches ``subject``."""
    wanted, given = pattern.split("."), subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(given) > i
        if i >= len(given) or (token != "*" and token != given[i]):
            return False
    return len(wanted) == len(given)


def test_the_analyst_publishes_nothing_but_reads_of_kring() -> None:
    [analyst] = [who for who in identities() if who.name == "analyst"]
    assert all(s.startswith("$JS.API.") and ".KRING_DLQ" not in s for s in analyst.publish)
    assert all(".KRING" in s for s in analyst.publish)


def test_readme_shows_the_table_as_it_is() -> None:
    assert markdown_table() in README.read_text(encoding="utf-8")


def test_credentials_are_made_once_readable_by_their_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "keys" / "nats"
    first = ensure_credentials(folder)
    assert sorted(first) == sorted(names())
    assert ensure_credentials(folder) == first
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(set(first.values())) == len(first)


def test_the_server_config_holds_hashes_never_a_password(tmp_path: Path) -> None:
    passwords = ensure_credentials(tmp_path)
    text = server_config(listen="127.0.0.1:4222", store_dir=tmp_path, passwords=passwords)
    assert "sync_interval: always" in text
    assert all(password not in text for password in passwords.values())
    assert text.count('password: "$2b$') == len(names())


def test_a_missing_or_short_password_is_refused_naming_it(tmp_path: Path) -> None:
    ensure_credentials(tmp_path)
    (tmp_path / "analyst.password").unlink()
    with pytest.raises(CredentialsError, match=r"analyst: .*analyst\.password is missing"):
        read_credentials(tmp_path)
    (tmp_path / "analyst.password").write_text("short\n")
    with pytest.raises(CredentialsError, match="shorter than 32"):
        read_credentials(tmp_path)
    with pytest.raises(CredentialsError, match="admin"):
        render(dict.fromkeys(names(), "x" * 40) | {"admin": "too-short"})
