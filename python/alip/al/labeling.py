"""Batch labeling through a ``concurrent.futures.Executor``.

:func:`label_batch` sends structures to an oracle on an executor -- a process
pool by default (one thread per worker for OpenMP/BLAS), a Dask
``distributed`` client's executor when one is given (``Client.get_executor()``
or the client itself; dask-jobqueue then reaches Slurm/PBS), or ``"serial"``
to label in this process.  Results are written to the :class:`LabelStore` by
this (parent) process as each one completes; a failed label (exception, NaN,
timeout, SCF not converged, crashed worker) is recorded with its error and its kind
(the structure's or the infrastructure's, see :class:`alip.data.oracles.Label`) and the
batch goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ase import Atoms
from tqdm.auto import tqdm

from alip.data.oracles import THREAD_ENV, Label, Oracle, make_oracle
from alip.data.store import LabelStore

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

#: where labels are computed: an Executor, a Dask ``distributed.Client`` (its executor is
#: used), "serial" (this process), "process" or None (a spawned process pool)
ExecutorSpec: TypeAlias = "Executor | Client | Literal['serial', 'process'] | None"

_ENV_LOCK = threading.Lock()


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """Temporarily set environment variables (so spawned children inherit them)."""
    with _ENV_LOCK:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for key, value in old.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _exit_with_parent(parent: int, interval: float = 1.0) -> None:
    """Worker watchdog: leave when the parent dies (else orphans wait on their queue forever)."""
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(env: dict[str, str]) -> None:
    os.environ.update(env)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="alip-parent-watchdog").start()
    try:  # also limit pools of libraries already loaded (optional dependency)
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(env.get("OMP_NUM_THREADS", "1")))
    except ImportError:
        pass


class ThreadLimitedProcessPool(ProcessPoolExecutor):
    """A spawn-context process pool whose workers start with ``thread_env`` set.

    The variables are in the environment when each worker process is created
    (BLAS/OpenMP read them when they load) and set again by the initializer.
    """

    def __init__(self, max_workers: int | None = None, thread_env: dict[str, str] | None = None) -> None:
        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise ValueError(f"max_workers must be a positive int, got {max_workers!r}")
        self.thread_env = dict(THREAD_ENV if thread_env is None else thread_env)
        super().__init__(
            max_workers=max_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.thread_env,),
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with _environment(self.thread_env):  # workers are spawned inside submit()
            return super().submit(fn, *args, **kwargs)


class InlineExecutor(Executor):
    """Runs each task in the calling thread at submit time (no parallelism)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - delivered through the future
            future.set_exception(exc)
        return future


def make_process_pool(
    max_workers: int | None = None, thread_env: dict[str, str] | None = None
) -> ThreadLimitedProcessPool:
    """The default labeling executor: spawned processes, one OpenMP/BLAS thread each."""
    return ThreadLimitedProcessPool(max_workers, thread_env)


def _resolve_executor(executor: ExecutorSpec, max_workers: int | None) -> tuple[Executor, bool]:
    """(executor, owned): an Executor to use and whether label_batch must shut it down."""
    if executor is None:
        return make_process_pool(max_workers), True
    if isinstance(executor, str):
        if executor == "serial":
            return InlineExecutor(), True
        if executor == "process":
            return make_process_pool(max_workers), True
        raise ValueError(f"executor string must be 'serial' or 'process', got {executor!r}")
    if isinstance(executor, Executor):
        return executor, False
    if callable(getattr(executor, "get_executor", None)):  # dask.distributed.Client
        return executor.get_executor(), False
    raise TypeError(
        f"executor must be a concurrent.futures.Executor, a Dask Client, "
        f"'serial', 'process' or None; got {type(executor).__name__}"
    )


def _label_task(oracle: Oracle, atoms: Atoms, timeout: float | None) -> Label:
    """Runs in the worker: label one structure."""
    return oracle.label(atoms, timeout=timeout)


@dataclass
class BatchResult:
    """Outcome of :func:`label_batch`: labels by pool id (or by position without pool ids)."""

    labels: dict[int, Label] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
    wall_time: float = 0.0

    @property
    def n_labeled(self) -> int:
        """Successful labels in this batch."""
        return sum(lab.ok for lab in self.labels.values())

    @property
    def n_failed(self) -> int:
        """Failed labels in this batch."""
        return sum(not lab.ok for lab in self.labels.values())

    def failed(self) -> dict[int, str]:
        """Error text of each failed label."""
        return {k: str(lab.error) for k, lab in self.labels.items() if not lab.ok}


def _jobs(structures: Sequence[Atoms | int], store: LabelStore | None) -> list[tuple[int, Atoms]]:
    jobs: list[tuple[int, Atoms]] = []
    for i, item in enumerate(structures):
        if isinstance(item, Atoms):
            if store is not None:
                if "pool_id" not in item.info or item.info["pool_id"] not in store:
                    raise ValueError(f"structure {i} has no pool_id in the store; add it with store.add_pool() first")
                key = int(item.info["pool_id"])
            else:
                key = int(item.info.get("pool_id", i))
            atoms = item.copy()
            atoms.calc = None
        elif isinstance(item, int) and not isinstance(item, bool):
            if store is None:
                raise ValueError("structures given as pool ids need a store")
            key, atoms = item, store.get(item)
            atoms.calc = None
        else:
            raise TypeError(f"structure {i} is {type(item).__name__}, not ase.Atoms or a pool id")
        jobs.append((key, atoms))
    keys = [k for k, _ in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("the batch contains the same pool_id more than once")
    return jobs


def label_batch(
    oracle: Oracle | str | dict,
    structures: Sequence[Atoms | int],
    store: LabelStore | None = None,
    executor: ExecutorSpec = None,
    iteration: int | None = None,
    timeout: float | None = None,
    progress: bool = True,
    max_workers: int | None = None,
    max_in_flight: int | None = None,
) -> BatchResult:
    """Label ``structures`` with ``oracle`` on ``executor``, storing each label as it arrives.

    ``structures``: Atoms (with ``info["pool_id"]`` when a store is given) or
    pool ids of the store.  With a store, structures already labeled are
    skipped (never computed twice), the rest are marked queued for
    ``iteration`` (kept if already queued; -1 when None and not yet queued)
    and each label is committed as soon as its future completes.
    ``executor``: None (a new process pool of ``max_workers``, shut down at
    the end), ``"serial"``, any ``concurrent.futures.Executor``, or a Dask
    ``Client``.  ``timeout``: seconds per label (see :meth:`Oracle.label`).
    ``max_in_flight`` bounds the tasks submitted but not finished (default:
    all at once; 1 for ``"serial"``).
    """
    oracle = make_oracle(oracle)
    t0 = time.perf_counter()
    result = BatchResult()
    jobs = _jobs(structures, store)
    if store is not None:
        result.skipped = [k for k, _ in jobs if store.status(k) == "labeled"]
        skip = set(result.skipped)
        jobs = [(k, a) for k, a in jobs if k not in skip]
        to_queue = [k for k, _ in jobs if iteration is not None or store.status(k) != "queued"]
        if to_queue:
            store.mark_queued(to_queue, -1 if iteration is None else iteration)
    if not jobs:
        result.wall_time = time.perf_counter() - t0
        return result

    pool, owned = _resolve_executor(executor, max_workers)
    window = max_in_flight or (1 if isinstance(pool, InlineExecutor) else len(jobs))
    if window < 1:
        raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight!r}")
    pending: dict[Future, int] = {}
    todo = iter(jobs)
    bar = tqdm(total=len(jobs), desc=f"labeling ({oracle.name})", unit="label", disable=not progress)

    def finish(key: int, label: Label) -> None:
        if store is not None:
            store.record(key, label, oracle)
        result.labels[key] = label
        bar.update(1)
        bar.set_postfix(failed=result.n_failed, refresh=False)

    def worker_error(exc: Exception) -> Label:
        return Label.failed(f"worker error: {type(exc).__name__}: {exc}", failure="infrastructure")

    try:
        while True:
            for key, atoms in todo:
                try:
                    pending[pool.submit(_label_task, oracle, atoms, timeout)] = key
                except Exception as exc:  # noqa: BLE001 - a broken pool refuses it, or it cannot be sent
                    finish(key, worker_error(exc))
                    continue
                if len(pending) >= window:
                    break
            if not pending:
                break
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                key = pending.pop(future)
                try:
                    label = future.result()
                    if not isinstance(label, Label):
                        raise TypeError(f"worker returned {type(label).__name__}, not a Label")
                except Exception as exc:  # noqa: BLE001 - worker died, pickling failed, ...
                    label = worker_error(exc)
                finish(key, label)
    finally:
        bar.close()
        for future in pending:
            future.cancel()
        if owned:
            pool.shutdown(wait=not pending, cancel_futures=True)
    result.wall_time = time.perf_counter() - t0
    return result
