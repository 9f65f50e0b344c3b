"""How a mixer gets the index tables for one input size: built once per size and device in
eager mode, traced into the graph under ``to_static``.

Each design writes its tables as a pure function of the map size, with Paddle ops only (so
the same code runs inside a static graph with dynamic height and width) and returning a
dataclass. :func:`size_cached` turns it into the one function a layer calls.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, List, Optional, TypeVar

import paddle

from ..paddle_fixes.cpu import place_key

__all__ = ["size_cached", "clear_cache"]

T = TypeVar("T")
_CACHES: List[Any] = []


def _eager_value(value: Any, place: str) -> Any:
    """A table on ``place``; a 0-D integer tensor as an int; tuples element-wise."""
    if isinstance(value, tuple):
        return tuple(_eager_value(v, place) for v in value)
    if isinstance(value, paddle.Tensor):
        if value.ndim == 0 and not paddle.is_floating_point(value):
            return int(value)
        return value if place_key(value.place) == place else value.to(place)
    return value


def size_cached(build: Callable[..., T], maxsize: int = 32) -> Callable[..., T]:
    """Wrap ``build(height, width, *config) -> dataclass of tables``.

    The returned ``get(height, width, *config, like=None)`` gives, in eager mode, the
    tables for Python-int sizes, built once per ``(height, width, config, device)`` (the
    ``maxsize`` most recent are kept), with 0-D integer fields turned into ints and tensors
    on the device of the tensor ``like`` (default: Paddle's current device). In a static
    graph it calls ``build`` itself, so the tables follow dynamic sizes. ``config`` must be
    hashable. ``build`` may also return a single tensor.
    """

    @functools.lru_cache(maxsize=maxsize)
    def cached(height: int, width: int, config: tuple, place: str) -> T:
        tables = build(height, width, *config)
        if not dataclasses.is_dataclass(tables):
            return _eager_value(tables, place)
        return dataclasses.replace(tables, **{
            f.name: _eager_value(getattr(tables, f.name), place)
            for f in dataclasses.fields(tables)})

    def get(height, width, *config, like: Optional[paddle.Tensor] = None) -> T:
        if paddle.in_dynamic_mode():
            return cached(int(height), int(width), config,
                          place_key(None if like is None else like.place))
        return build(height, width, *config)

    # Not functools.wraps: to_static's AST transform follows __wrapped__ and would call
    # build with get's arguments.
    get.__doc__ = build.__doc__
    _CACHES.append(cached)
    return get


def clear_cache() -> None:
    """Free every cached table (for example after a run over many input sizes)."""
    for cache in _CACHES:
        cache.cache_clear()
