"""Looking for secrets and names in the raw bytes of every file under a folder: the stores, their
WAL and shared-memory files, NATS's store, logs, whatever is there."""

from __future__ import annotations

import sqlite3
from base64 import b64decode
from collections.abc import Iterable, Mapping
from contextlib import closing
from pathlib import Path

from shared.cipher import AESGCMCipher
from shared.store import case_keys_table


def text_forms(text: str) -> list[bytes]:
    """The ways a string may sit in a file: UTF-8, UTF-16 (either order), JSON's escapes."""
    forms = [text.encode(), text.encode("utf-16-le"), text.encode("utf-16-be")]
    escaped = text.encode("ascii", "backslashreplace").replace(b"\\x", b"\\u00")
    return list(dict.fromkeys([*forms, escaped]))


def key_forms(stored: str, service_key: str | None) -> list[bytes]:
    """A case key as its store keeps it (base64, wrapped in the service key where one is set),
    and the key itself, raw and in base64, whole and in pieces."""
    plain = stored
    if service_key is not None:
        plain = AESGCMCipher.of_key(service_key).decrypt(b64decode(stored)).decode()
    whole = [stored.encode(), plain.encode(), b64decode(plain)]
    # Pieces too: a freed cell partly overwritten keeps the rest (16 random bytes or base64
    # characters never turn up by chance).
    pieces = [form[i : i + 16] for form in whole for i in range(0, len(form) - 15, 8)]
    return list(dict.fromkeys([*whole, *pieces]))


def stored_case_key(database: Path, service: str, case_id: str) -> str:
    """The case's key as the service's SQLite store holds it now (read-only, WAL included)."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        row = db.execute(
            f"SELECT key FROM {case_keys_table(service)} WHERE case_id = ?",
            (case_id,),
        ).fetchone()
    assert row is not None and row[0] is not None, f"{service} holds no key for {case_id}"
    return str(row[0])


def files_holding(folder: Path, needles: Mapping[str, Iterable[bytes]]) -> dict[str, list[str]]:
    """For each needle that some file holds in any of its forms: which files (relative)."""
    wanted = {name: [form for form in forms if form] for name, forms in needles.items()}
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for name, forms in wanted.items():
            if any(form in data for form in forms):
                found.setdefault(name, []).append(str(path.relative_to(folder)))
    return found


def scanned(folder: Path) -> list[str]:
    """Every file a scan of ``folder`` reads, with its size (for a test's report)."""
    return [
        f"{p.relative_to(folder)} ({p.stat().st_size} bytes)"
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]
