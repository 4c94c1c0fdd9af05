"""The garbage collector of `banxway serve`: no long pauses while live events fan out.

CPython's full (generation 2) collection walks every tracked object the process holds, and stops the event loop
while it does. In a warm API process most of those are the startup's own (modules, the GraphQL schema, the mapped
models: ~500,000 objects) and live forever; each subscriber adds ~250 more. `bench/fanout.py` (1,000 subscribers,
20 `messageSend`/s) found full collections every ~10 s, each stopping the loop for ~410 ms: the whole of the
deliveries' and the mutations' p99.

So, once the server has started:
* the startup's objects are collected once and frozen (`gc.freeze`: moved to the permanent generation, which no
  collection walks; they are still freed by reference counting if ever dropped); a full collection then takes
  ~100 ms at 1,000 subscribers instead of ~410;
* full collections wait for `FULL_COLLECTION_EVERY` middle-generation collections instead of 10 (one every few
  minutes under load instead of every ~10 s). Young and middle collections, which free almost everything
  short-lived, run as before; what is cyclic garbage by the time it is old is freed at the next full collection;
* and that next one comes within `FULL_COLLECTION_INTERVAL` whatever the thresholds say (`collect_periodically`):
  CPython also waits until the objects promoted since the last full collection are a quarter of the old
  generation's, which on a quiet server could take hours, while closed connections' and cancelled tasks' cycles
  wait in it.

`BANXWAY_GC_TUNING=off` leaves CPython's defaults.
"""

from __future__ import annotations

import asyncio
import gc

FULL_COLLECTION_EVERY = 1000  # middle-generation collections between full ones (CPython: 10)
FULL_COLLECTION_INTERVAL = 600.0  # seconds: a full collection at least this often


def after_startup() -> None:
    """Freeze what the started process holds, and space the full collections out."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


async def collect_periodically(interval: float = FULL_COLLECTION_INTERVAL) -> None:
    """A full collection every `interval` seconds, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        gc.collect()
