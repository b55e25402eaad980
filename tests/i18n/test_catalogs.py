"""The message catalogs are complete: every language translates every message, with the
same placeholders, and every message the code and templates use exists (issue 15).

A catalog that misses a message (or leaves it empty, or drops a ``{placeholder}``) fails
here, before a contact reads English in the middle of a French page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from prefcenter.templates import messages

SRC = Path(__file__).resolve().parents[2] / "src" / "prefcenter"
LOCALE = SRC / "locale"


def _po(lang: str) -> dict[str, str]:
    with (LOCALE / lang / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return {str(m.id): str(m.string) for m in read_po(handle) if m.id}


def test_the_catalogs_on_disk_are_the_supported_languages() -> None:
    """(Every language has ``messages.po``; every one but English ``component.po``.)"""
    assert sorted(p.name for p in LOCALE.iterdir() if p.is_dir()) == sorted(messages.SUPPORTED)
    assert set(messages.SUPPORTED) >= {"en", "de", "fr", "es", "it", "nl", "pt"}


@pytest.mark.parametrize("lang", messages.SUPPORTED)
def test_every_catalog_translates_every_message(lang: str) -> None:
    english = _po("en")
    own = _po(lang)
    missing = sorted(k for k in english if not own.get(k, "").strip())
    assert missing == [], f"{lang} lacks {missing}"
    assert sorted(set(own) - set(english)) == [], f"{lang} has messages English lacks"
    for key, text in english.items():
        assert messages.placeholders(own[key]) == messages.placeholders(text), (lang, key)
        if lang != "en":
            assert own[key] != text or len(text) < 12 or "SMS" in text, (
                f"{lang}.{key} is still the English text")


def test_every_message_the_code_uses_is_in_the_catalogs() -> None:
    used: set[str] = set()
    for path in [*SRC.rglob("*.html"), *SRC.rglob("*.txt"), *SRC.rglob("*.py")]:
        text = path.read_text()
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z0-9_.]+)["']""", text))
    # Keys built from parts: what./level. by relation, err. by status, channel., sms.
    used |= {f"{p}.{r}" for p in ("what", "level") for r in ("self", "ancestor", "root")}
    used |= {f"err.{c}_{part}" for c in (400, 404, 410, 500) for part in ("title", "text")}
    used |= {f"channel.{c}" for c in ("EMAIL", "SMS", "ALL")}
    used |= {f"sms.{k}" for k in ("STOP", "START", "HELP")}
    assert len(used) > 60
    assert sorted(used - messages.keys()) == []


def test_a_missing_message_fails_the_completeness_check(tmp_path: Path) -> None:
    """The check above would catch a dropped entry (not just trust the files)."""
    source = (LOCALE / "fr" / "LC_MESSAGES" / "messages.po").read_text()
    cut = re.sub(r'msgid "unsub\.title"\nmsgstr "[^"]*"\n', "", source)
    assert cut != source
    (tmp_path / "messages.po").write_text(cut)
    with (tmp_path / "messages.po").open("rb") as handle:
        own = {str(m.id) for m in read_po(handle) if m.id}
    assert "unsub.title" in set(_po("en")) - own


# --- the embeddable component (domain "component": English text as msgid) -----------------

COMPONENT = SRC.parents[1] / "frontend-stub" / "prefcenter-preferences.js"


def _component_ids() -> set[str]:
    """What Babel extracts from the component as written (``babel.cfg``)."""
    found = extract_from_file("javascript", str(COMPONENT), keywords={"_": None, "N_": None},
                              options={"parse_template_string": True})
    return {text for _line, text, _comments, _context in found if isinstance(text, str)}


def _component_po(lang: str) -> dict[str, str]:
    with (LOCALE / lang / "LC_MESSAGES" / "component.po").open("rb") as handle:
        return {str(m.id): str(m.string) for m in read_po(handle) if m.id}


def test_the_component_marks_its_texts() -> None:
    ids = _component_ids()
    assert len(ids) > 150
    assert {"What we may send you", "Stop {words} from {scope}?", "On", "Off"} <= ids


@pytest.mark.parametrize("lang", [lang for lang in messages.SUPPORTED if lang != "en"])
def test_every_component_catalog_translates_every_text(lang: str) -> None:
    ids = _component_ids()
    own = _component_po(lang)
    missing = sorted(i for i in ids if not own.get(i, "").strip())
    assert missing == [], f"{lang} component.po lacks {missing[:5]} ({len(missing)})"
    assert sorted(set(own) - ids) == [], f"{lang} component.po has texts the code lost"
    for text in ids:
        assert messages.placeholders(own[text]) == messages.placeholders(text), (lang, text)
