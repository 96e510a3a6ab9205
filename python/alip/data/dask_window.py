"""A sliding window of Dask tasks: bounded worker memory whatever the number of chunks."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client


def run_windowed(
    client: Client, items: Iterable[Any], submit: Callable[[Any], Any], handle: Callable[[Any], Any]
) -> None:
    """Submits ``submit(item)`` for every item, at most 2 × (worker threads) at a time,
    and calls ``handle(result)`` as tasks finish (in completion order); ``handle``
    returning ``False`` stops early. Unfinished tasks are cancelled on exit."""
    from distributed import as_completed

    window = max(2, 2 * sum(client.nthreads().values()))
    pending = iter(items)
    running = as_completed([submit(item) for item in itertools.islice(pending, window)])
    try:
        for fut in running:
            result = fut.result()
            fut.release()
            if handle(result) is False:
                break
            nxt = next(pending, None)
            if nxt is not None:
                running.add(submit(nxt))
    finally:
        client.cancel(list(running.futures))
