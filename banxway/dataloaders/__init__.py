"""Per-request loaders, one class per relation, named for its key.

A loader batches every `load(key)` made in the same event-loop tick into one
query and caches results for the rest of the request. Loaders are built per
request in `banxway.context.Context` and never shared between requests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import select

from banxway.db.models import Organization, User
from banxway.db.session import SerialSession

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class DataLoader(Generic[K, V]):
    """Batch and cache loads of `V` by key `K`; subclasses implement `batch_load`."""

    def __init__(self, db: SerialSession) -> None:
        self.db = db
        self._cache: dict[K, asyncio.Future[V | None]] = {}
        self._queue: list[K] = []

    async def batch_load(self, keys: Sequence[K]) -> Sequence[V | None]:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, key: K) -> asyncio.Future[V | None]:
        if key in self._cache:
            return self._cache[key]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        self._cache[key] = future
        if not self._queue:
            loop.call_soon(lambda: asyncio.ensure_future(self._dispatch()))
        self._queue.append(key)
        return future

    async def load_many(self, keys: Iterable[K]) -> list[V | None]:
        return list(await asyncio.gather(*(self.load(key) for key in keys)))

    def prime(self, key: K, value: V | None) -> None:
        if key not in self._cache:
            future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
            future.set_result(value)
            self._cache[key] = future

    async def _dispatch(self) -> None:
        keys, self._queue = self._queue, []
        try:
            values = await self.batch_load(keys)
        except Exception as exc:
            for key in keys:
                if not self._cache[key].done():
                    self._cache[key].set_exception(exc)
                self._cache.pop(key, None)
            return
        for key, value in zip(keys, values, strict=True):
            if not self._cache[key].done():
                self._cache[key].set_result(value)


class _ByIdLoader(DataLoader[uuid.UUID, Any]):
    model: Any

    async def batch_load(self, keys: Sequence[uuid.UUID]) -> list[Any]:
        rows = await self.db.scalars(select(self.model).where(self.model.id.in_(keys)))
        by_id = {row.id: row for row in rows}
        return [by_id.get(key) for key in keys]


class UserByIdLoader(_ByIdLoader):
    model = User


class OrganizationByIdLoader(_ByIdLoader):
    model = Organization


@dataclass
class Loaders:
    db: SerialSession
    user_by_id: UserByIdLoader = field(init=False)
    organization_by_id: OrganizationByIdLoader = field(init=False)

    def __post_init__(self) -> None:
        self.user_by_id = UserByIdLoader(self.db)
        self.organization_by_id = OrganizationByIdLoader(self.db)
