"""A generic name -> object registry shared by methods, models, datasets, recipes and tracks."""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import UsageError, unknown

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps canonical names to objects; ``register`` is usable as a decorator.

    A name can be registered once: a second registration (a plugin that reuses a
    built-in name, say) raises ``UsageError`` instead of silently replacing it.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origin: dict[str, str] = {}

    def register(self, name: str, obj: T | None = None, *, origin: str = "builtin"):
        def add(o: T) -> T:
            if name in self._items and self._items[name] is not o:
                raise UsageError(
                    f"{self.kind} {name!r} from {origin} clashes with the {self.kind} of that "
                    f"name from {self._origin[name]}; pick another name"
                )
            self._items[name] = o
            self._origin[name] = origin
            return o

        return add(obj) if obj is not None else add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise unknown(self.kind, name, self._items) from None

    def origin(self, name: str) -> str:
        return self._origin[name]

    def names(self, pattern: str = "*", where: Callable[[T], bool] | None = None) -> list[str]:
        return [
            n for n, o in self._items.items()
            if fnmatch.fnmatch(n, pattern) and (where is None or where(o))
        ]

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
