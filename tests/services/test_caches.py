"""The per-process caches of the hot path: bounded, expiring, and never resurrecting a
value read before an invalidation; the host epoch shared by processes through a file."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from prefcenter import caches


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_max_age_and_the_size_is_bounded() -> None:
    clock = Clock()
    cache: caches.TtlCache[str, int] = caches.TtlCache("t1", max_size=2, max_age=5.0,
                                                      clock=clock)
    cache.put("a", 1, cache.generation)
    clock.now += 4.9
    assert cache.get("a") == 1
    clock.now += 0.2
    assert cache.get("a") is None  # older than max_age: read again
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        cache.put(key, value, cache.generation)
    assert len(cache) == 2 and cache.get("a") is None and cache.get("c") == 3


def test_a_read_that_raced_an_invalidation_is_not_kept() -> None:
    cache: caches.TtlCache[str, str] = caches.TtlCache("t2", max_size=10)
    before = cache.generation  # a request starts reading the database ...
    cache.discard("k")  # ... the row changes and is invalidated meanwhile ...
    cache.put("k", "old value", before)  # ... and the old read comes back
    assert cache.get("k") is None
    cache.put("k", "new value", cache.generation)
    assert cache.get("k") == "new value"


def test_max_age_zero_turns_caching_off() -> None:
    cache: caches.TtlCache[str, str] = caches.TtlCache("t3", max_size=10, max_age=0)
    cache.put("k", "v", cache.generation)
    assert cache.get("k") is None


def _bump(path: str) -> None:
    caches.HostEpoch(Path(path)).bump()


def test_an_epoch_bumped_by_another_process_empties_the_caches(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'db.sqlite3'}"
    cache = caches.register(caches.TtlCache[str, str]("t4", max_size=10))
    caches.configure(5.0, url)
    try:
        cache.put("k", "v", cache.generation)
        assert cache.get("k") == "v"
        path = caches.epoch_path(url)
        assert path is not None and path.parent == tmp_path
        process = multiprocessing.get_context("spawn").Process(target=_bump, args=(str(path),))
        process.start()
        process.join(30)
        assert process.exitcode == 0
        assert cache.get("k") is None
    finally:
        caches.configure(caches.DEFAULT_MAX_AGE, None)


def test_invalidations_from_the_fan_out_drop_one_key() -> None:
    cache = caches.register(caches.TtlCache[str, str]("t5", max_size=10))
    cache.put("a", "1", cache.generation)
    cache.put("b", "2", cache.generation)
    caches.apply(caches.encode("t5", "a"))
    assert cache.get("a") is None and cache.get("b") == "2"
    caches.apply(b"not json")  # unreadable: forget everything rather than guess
    assert cache.get("b") is None


def test_epoch_files_are_per_database() -> None:
    a = caches.epoch_path("postgres://u:secret@db1:5432/app?schema=a")
    b = caches.epoch_path("postgres://u:other@db1:5432/app?schema=a")
    c = caches.epoch_path("postgres://u@db1:5432/app?schema=b")
    assert a == b != c and a is not None and "secret" not in str(a)
    assert caches.epoch_path("sqlite://:memory:") is None
