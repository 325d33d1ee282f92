"""The repository explains itself: nothing in it points at a design document, a seed or a
section it does not contain, and each `docs/<page>.md, "Section"` named exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Words that once pointed outside the repository.
ELSEWHERE = re.compile(r"DESIGN\.md|\bseeds? \d{3}|§\s?\d")
REFERENCE = re.compile(r"docs/([a-z]+\.md),\s+\"([^\"]+)\"", re.S)


def _tracked() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    kinds = (".py", ".md", ".yml", ".yaml", ".conf", ".sh", ".toml", ".json", ".mjs")
    return [
        ROOT / name
        for name in listed
        if name.endswith(kinds) or name in ("Makefile", "Dockerfile", "deploy/make-secrets")
    ]


def _headings(page: Path) -> set[str]:
    return {
        line.lstrip("#").strip() for line in page.read_text().splitlines() if line.startswith("#")
    }


def test_nothing_points_at_a_document_the_repository_lacks() -> None:
    this = Path(__file__).resolve()
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _tracked()
        if path != this and path.is_file()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if ELSEWHERE.search(line)
    ]
    assert found == []


def test_every_section_named_is_in_its_page() -> None:
    named = 0
    for path in _tracked():
        if not path.is_file():
            continue
        text = " ".join(path.read_text(errors="replace").split())  # a reference may wrap
        for page, section in REFERENCE.findall(text.replace('\\"', '"')):
            named += 1
            heading = section.split(":")[0]
            assert heading in _headings(ROOT / "docs" / page), f"{path.name}: {page}, {section!r}"
    assert named >= 10
