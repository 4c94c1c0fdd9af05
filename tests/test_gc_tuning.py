"""banxway.gc_tuning: the started server's heap is frozen and full collections are spaced out."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from banxway import gc_tuning


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_after_startup_freezes_what_the_process_holds_and_spaces_full_collections(restored_gc: None) -> None:
    young, middle, _ = gc.get_threshold()
    held = [[n] for n in range(1_000)]  # tracked objects that a started server would hold
    gc_tuning.after_startup()
    # the startup's objects are in the permanent generation, which no collection walks
    collectable = {id(obj) for obj in gc.get_objects()}  # (the three generations, not the permanent one)
    assert not any(id(item) in collectable for item in held)
    # and full collections wait for FULL_COLLECTION_EVERY middle ones; the others keep CPython's thresholds
    assert gc.get_threshold() == (young, middle, gc_tuning.FULL_COLLECTION_EVERY)


async def test_a_full_collection_comes_within_the_interval_whatever_the_thresholds(restored_gc: None) -> None:
    # given thresholds that would not run a full collection for a long time, and cyclic garbage in the old generation
    gc.set_threshold(10**6, 10**6, 10**6)

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    cycle = Cycle()
    gc.collect()  # (moved to the old generation)
    gone = weakref.ref(cycle)
    del cycle
    assert gone() is not None
    # when the periodic collection runs, then the cycle is freed
    collector = asyncio.create_task(gc_tuning.collect_periodically(0.05))
    try:
        for _ in range(100):
            if gone() is None:
                break
            await asyncio.sleep(0.02)
    finally:
        collector.cancel()
    assert gone() is None
