"""Training sub-committees in worker processes, so that a K-member committee uses several cores.

The K members of a committee are one batched network (one torch thread is as fast as
two on it), so the second core is used by splitting the members over worker processes,
each training its own sub-committee with one thread.  This module holds what is not
specific to training: how many processes to use, how to split the members, and the
worker processes (fresh interpreters: torch is not fork-safe; the data reach them
through one memory-mapped file, not as a pickled copy each).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

# Below this many atom-epochs (training atoms × (Adam epochs + L-BFGS steps)) "auto" trains
# in this process: starting two spawned workers costs 4–5 s on 2 cores (importing torch),
# and the K = 5 mlearn Si run (1.2e4 atoms × 400 = 4.8e6) takes 3 s per 1e5 atom-epochs.
# At 1e6 the run is ~30 s in one process, where the 3 + 2 split already saves more than
# the start-up (README, "Measured speed").
MIN_ATOM_EPOCHS = 1_000_000


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_processes(processes: int | str, n_members: int, threads: int | None, atom_epochs: int, cpu: bool) -> int:
    """The number of worker processes for ``processes`` (an int or "auto"); 1 means in-process.

    "auto": min(n_members, usable cores // threads), or 1 on a GPU, for small jobs
    (fewer than :data:`MIN_ATOM_EPOCHS` atom-epochs) and inside a daemonic process
    (a multiprocessing pool worker shares the cores with its siblings already).
    """
    if processes != "auto":
        n = int(processes)
        if n > 1 and not cpu:
            raise ValueError("processes > 1 trains on the CPU only; use processes = 1 with a GPU")
        return max(1, min(n, n_members))
    if not cpu or multiprocessing.current_process().daemon or atom_epochs < MIN_ATOM_EPOCHS:
        return 1
    return max(1, min(n_members, usable_cores() // max(1, threads or 1)))


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
        procs = [_start_worker() for _ in groups]
        try:
            job = os.path.join(tmp, "job.pt")
            torch.save({"fn": f"{fn.__module__}:{fn.__qualname__}", "args": args}, job)
            outs = [os.path.join(tmp, f"out{i}.pt") for i in range(len(groups))]
            for proc, group, out in zip(procs, groups, outs):
                proc.stdin.write(json.dumps({"job": job, "members": list(group), "out": out}) + "\n")
                proc.stdin.close()
            results = []
            for proc, group, out in zip(procs, groups, outs):
                code = proc.wait()
                reply = torch.load(out, weights_only=False) if os.path.exists(out) else None
                if code != 0 or reply is None or "error" in reply:
                    detail = reply["error"] if reply else f"the worker exited with status {code} (out of memory?)"
                    raise RuntimeError(f"training members {list(group)} failed in a worker process:\n{detail}")
                results.append(reply["result"])
            return results
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def _start_worker() -> subprocess.Popen:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the one holding alip/
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen(
        [sys.executable, "-m", "alip.models.member_processes"], stdin=subprocess.PIPE, text=True, env=env
    )


def _worker_main() -> int:
    """A worker: import torch, read one job line from stdin, run it, save the result or the error."""
    import importlib
    import traceback

    import torch

    import alip.models.training  # noqa: F401  (the usual callee: imported while the parent prepares the job)

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
