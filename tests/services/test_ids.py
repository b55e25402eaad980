"""Ids as the API reads them (``common.parse_uuid``): any spelling ``uuid.UUID`` accepts is
the same id, written one way; anything else is the NotFound an unknown id gets. Ids
already written that way (all the API gives out) are taken as they are (issue #20)."""

from __future__ import annotations

import uuid

import pytest

from prefcenter.errors import NotFound
from prefcenter.services.common import parse_uuid
from prefcenter.services.consent import resolution


def test_every_spelling_of_an_id_is_written_one_way() -> None:
    canonical = str(uuid.uuid4())
    assert parse_uuid(canonical, "contactId") is canonical
    for spelling in (canonical.upper(), canonical.replace("-", ""), f"{{{canonical}}}",
                     f"urn:uuid:{canonical}"):
        assert parse_uuid(spelling, "contactId") == canonical


@pytest.mark.parametrize("bad", ["", "nope", "1234", str(uuid.uuid4())[:-1],
                                 str(uuid.uuid4()) + "0", " " + str(uuid.uuid4()),
                                 str(uuid.uuid4()) + "\n", None, 42])
def test_anything_else_is_not_found(bad: object) -> None:
    with pytest.raises(NotFound) as caught:
        parse_uuid(bad, "scopeId", "scope")  # type: ignore[arg-type]
    assert caught.value.field == "scopeId"


def test_a_paths_ids_come_from_its_index() -> None:
    from types import SimpleNamespace

    scopes = tuple(SimpleNamespace(id=uuid.uuid4()) for _ in range(3))
    assert resolution.path_ids(scopes) == [str(s.id) for s in scopes]  # type: ignore[arg-type]
