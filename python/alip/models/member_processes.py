"""Training sub-committees in worker processes, so that a K-member committee uses several cores.

The K members of a committee are one batched network (one torch thread is as fast as
two on it), so the second core is used by splitting the members over worker processes,
each training its own sub-committee with one thread; that pays only where the members'
own work dominates a step (see the cost model below).  This module holds what is not
specific to training: how many processes to use, how to split the members, and the
worker processes (fresh interpreters: torch is not fork-safe; the data reach them
through one memory-mapped file, not as a pickled copy each).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

# When "auto" splits the members (measured on the mlearn Si set, 2 cores, one torch thread;
# README "Training speed and the second core"): one Adam step of the sparse-force CPU path costs about a + b·K,
# where a (the batch gather, the descriptor-Jacobian contraction's indexing, autograd) does
# not depend on the K members and b is one member's network: a ≈ 10 b for 48-32-32-1
# networks (2592 multiply-adds per atom), b growing about as the square root of the
# multiply-adds (step CPU time for K = 1…10 at 32,32 / 64,64 / 128,128).  Splitting
# K members over P processes saves at most b·(K − ⌈K/P⌉) / (a + b·K) of the wall time
# and costs about P times the CPU time; "auto" splits only where that saving is at least
# MIN_SAVING (so not for the default K = 5 at 32,32: 13 %) and the run is long enough
# to repay starting the workers (4–5 s on 2 cores: importing torch).
SHARED_PER_MEMBER = 10.4  # a / b at REFERENCE_MACS multiply-adds per atom and member
REFERENCE_MACS = 2592
MIN_SAVING = 0.2
MIN_ATOM_EPOCHS = 1_000_000  # training atoms × (epochs + L-BFGS steps); the mlearn set: 4.8e6


def predicted_saving(n_members: int, n_processes: int, member_macs: int) -> float:
    """The share of training wall time that ``n_processes`` workers save over one process,
    by the cost model above (``member_macs``: one member's multiply-adds per atom)."""
    shared = SHARED_PER_MEMBER * math.sqrt(REFERENCE_MACS / max(member_macs, 1))
    largest = -(-n_members // max(n_processes, 1))
    return (n_members - largest) / (shared + n_members)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


#: the most torch threads that ``threads="auto"`` gives a training in one process: measured on
#: 2 cores, a second thread trained the mlearn committee 1.8x faster on one machine (2.1 GHz
#: Xeon, docs/accuracy_studies.md, eighth study) and 1.03x on another; more threads than 2 are
#: not measured (pass a number)
AUTO_MAX_THREADS = 2


def worker_threads(threads: int | str | None) -> int:
    """The torch threads of each worker process: ``threads``, or 1 for "auto" and None."""
    return 1 if threads in (None, "auto") else int(threads)


def training_threads(threads: int | str | None, n_processes: int) -> int | None:
    """The torch threads per process of a training in ``n_processes`` processes: in one process
    ``threads`` itself (None: as they are), for "auto" the usable cores up to
    :data:`AUTO_MAX_THREADS`; in worker processes :func:`worker_threads`."""
    if n_processes > 1:
        return worker_threads(threads)
    return max(1, min(usable_cores(), AUTO_MAX_THREADS)) if threads == "auto" else threads  # type: ignore[return-value]


def resolve_processes(
    processes: int | str, n_members: int, threads: int | str | None, atom_epochs: int, member_macs: int, cpu: bool
) -> int:
    """The number of worker processes for ``processes`` (an int or "auto"); 1 means in-process.

    "auto": min(n_members, usable cores // threads) where :func:`predicted_saving` is at
    least :data:`MIN_SAVING` and the job has :data:`MIN_ATOM_EPOCHS` atom-epochs; else 1,
    as on a GPU and inside a daemonic process (a pool worker shares the cores already).
    """
    if processes != "auto":
        n = int(processes)
        if n > 1 and not cpu:
            raise ValueError("processes > 1 trains on the CPU only; use processes = 1 with a GPU")
        return max(1, min(n, n_members))
    if not cpu or multiprocessing.current_process().daemon or atom_epochs < MIN_ATOM_EPOCHS:
        return 1
    n = max(1, min(n_members, usable_cores() // worker_threads(threads)))
    return n if n > 1 and predicted_saving(n_members, n, member_macs) >= MIN_SAVING else 1


def split_members(n_members: int, n_groups: int) -> list[list[int]]:
    """Contiguous groups of member indices, sizes differing by at most one, larger first:
    ``split_members(5, 2) == [[0, 1, 2], [3, 4]]``."""
    n_groups = max(1, min(n_groups, n_members))
    base, extra = divmod(n_members, n_groups)
    groups, start = [], 0
    for g in range(n_groups):
        size = base + (g < extra)
        groups.append(list(range(start, start + size)))
        start += size
    return groups


def run_groups(fn: Callable[..., Any], groups: Sequence[Sequence[int]], *args: Any) -> list[Any]:
    """``[fn(group, *args) for group in groups]``, each call in its own worker process.

    Workers are fresh interpreters (``python -m alip.models.member_processes``), so neither
    torch's threads (unsafe to fork) nor the caller's ``__main__`` (re-imported by the
    multiprocessing spawn method) are involved; they start importing torch at once. ``args``
    are saved once to a temporary file that the workers map into memory (no copy per
    worker); results come back the same way. ``fn`` must be a module-level function. A
    failing call raises RuntimeError naming its members, with the worker's traceback.
    """
    import torch

    with tempfile.TemporaryDirectory(prefix="alip-train-") as tmp:
        procs = [_start_worker(fn.__module__) for _ in groups]
        try:
            job = os.path.join(tmp, "job.pt")
            torch.save({"fn": f"{fn.__module__}:{fn.__qualname__}", "args": args}, job)
            outs = [os.path.join(tmp, f"out{i}.pt") for i in range(len(groups))]
            for proc, group, out in zip(procs, groups, outs):
                try:
                    proc.stdin.write(json.dumps({"job": job, "members": list(group), "out": out}) + "\n")
                    proc.stdin.close()
                except BrokenPipeError:  # it died starting up: its exit status is reported below
                    pass
            pending = set(range(len(procs)))
            while pending:  # the first failure ends the others at once
                for i in sorted(pending):
                    code = procs[i].poll()
                    if code is None:
                        continue
                    pending.discard(i)
                    reply = _reply(outs[i])
                    if code != 0 or reply is None or "error" in reply:
                        detail = reply["error"] if reply else f"the worker exited with status {code} (out of memory?)"
                        raise RuntimeError(f"training members {list(groups[i])} failed in a worker process:\n{detail}")
                time.sleep(0.05)
            return [torch.load(out, weights_only=False)["result"] for out in outs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def _reply(path: str) -> dict | None:
    """A worker's saved reply, or None where it wrote none (or died writing it)."""
    import torch

    try:
        return torch.load(path, weights_only=False)
    except (OSError, RuntimeError, EOFError):
        return None


def _start_worker(module: str) -> subprocess.Popen:
    """A worker that imports ``module`` (and so torch) while the parent writes the job."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the one holding alip/
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen(
        [sys.executable, "-m", "alip.models.member_processes", module], stdin=subprocess.PIPE, text=True, env=env
    )


def _worker_main() -> int:
    """A worker: import the callee's module (argv[1]), read one job line from stdin, run it,
    save the result or the error."""
    import importlib
    import traceback

    import torch

    importlib.import_module(sys.argv[1])

    line = sys.stdin.readline()
    if not line:
        return 0  # the parent gave up before sending a job
    order = json.loads(line)
    try:
        job = torch.load(order["job"], mmap=True, weights_only=False)
        module, name = job["fn"].split(":")
        fn = getattr(importlib.import_module(module), name)
        reply = {"result": fn(order["members"], *job["args"])}
    except BaseException:  # noqa: BLE001 - everything goes back to the parent
        reply = {"error": traceback.format_exc()}
    torch.save(reply, order["out"])
    return 1 if "error" in reply else 0


if __name__ == "__main__":
    raise SystemExit(_worker_main())
