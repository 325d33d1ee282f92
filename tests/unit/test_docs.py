"""The README's subject map names every integration event the code publishes."""

from pathlib import Path

from shared.events import EVENT_CLASSES

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_subject_map_lists_every_event() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [
        cls.__name__
        for cls in EVENT_CLASSES
        if f"| `{cls.subject()}` | `{cls.type_name()}` | {cls.origin}" not in text
    ]
    assert missing == []
