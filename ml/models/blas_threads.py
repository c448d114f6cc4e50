"""One BLAS thread per caller while work runs two calls side by side, safe when such spans overlap.

Matching local features is a matrix product (BLAS) followed by single-threaded numpy and OpenCV work.
Two pairs verified at once on one BLAS thread each fill the two cores better than one pair at a time on
a two-thread BLAS (the shortlist of a query: p95 ~93 -> ~67 ms here), and two calibration queries at
once likewise. The BLAS thread count is process-wide, so a plain `threadpool_limits` block per caller
would race: the caller that leaves first would restore two threads under the other, and the one that
leaves last would restore the one thread it found. Here the first caller in sets the limit, the last
one out restores what the process had.

The libraries are found on first use and again only after Python has imported more modules: finding them reads
the process's memory map, ~5 ms that every photo's verification paid when each span looked anew (as threadpoolctl's
own `threadpool_limits` does). A module imported later can bring a BLAS of its own (scipy's, loaded by a text
model or a report after the first photo was verified), and one found once would never limit it.

torch's own operators keep their thread count per thread instead: `one_torch_thread_each` makes the pools
whose threads run them on one thread each (the forward passes, verification, calibration), and
`widened_once_set` lets a network take a second thread once the work beside it has finished.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_holders = 0
_limiter = None  # threadpoolctl's limiter while someone holds the limit
_controller: ThreadpoolController | None = None
_modules_seen = 0  # how many modules Python had imported when `_controller` looked for libraries


@contextmanager
def one_blas_thread() -> Iterator[None]:
    global _holders, _limiter, _controller, _modules_seen
    with _lock:
        if _holders == 0:
            if _controller is None or len(sys.modules) != _modules_seen:
                _modules_seen = len(sys.modules)
                _controller = ThreadpoolController()
            _limiter = _controller.limit(limits=1, user_api="blas")
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None


def one_torch_thread_each(workers: int, name: str) -> ThreadPoolExecutor:
    """A pool whose threads each run torch's operators on one thread.

    The parallelism of a photo's answer is ours: its two forward passes side by side, its pairs verified two at
    a time. Each of them on torch's default two threads put four threads on two cores. On an Ice Lake Xeon
    without bfloat16, in alternating runs over the dev queries, this alone moved the answer's mean within the
    host's noise (379 -> 385 and 330 -> 307 ms), and with the batch norms folded 329 -> 319 and 311 -> 273 ms,
    every answer the same. torch keeps the count per calling thread (OpenMP's), so a thread that already ran
    torch keeps its own; but a thread that first runs torch after a pool has started takes the count torch was
    last given, one: the torch work outside these pools (the heads' and the fusion's small fits, the text
    encoder on a few words) then runs on one thread too."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=torch.set_num_threads,
                              initargs=(1,))


@contextmanager
def widened_once_set(free: threading.Event | None, network: torch.nn.Module, threads: int = 2) -> Iterator[None]:
    """`network`'s layers run on `threads` torch threads from the first one to start after `free` is set
    (with no `free`, on the caller's count throughout).

    A photo's two forward passes run side by side on one thread each, and one finishes well before the other
    (EfficientNet-Lite0 ~59 ms, XFeat at 1024 px ~112 ms on one core of an AMD EPYC with bfloat16): for the rest
    of the slower pass the other core sat idle. Convolutions scale with threads (XFeat's ~112 -> ~58 ms on two),
    so taking that core for the remaining layers shortens the slower pass. The count is checked as each layer
    starts, on the calling thread (torch keeps it per thread), and put back to the caller's own on leaving."""
    if free is None:
        yield
        return
    own = torch.get_num_threads()

    def widen(_module: torch.nn.Module, _inputs: object) -> None:
        if free.is_set() and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    handles = [module.register_forward_pre_hook(widen) for module in network.modules()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        torch.set_num_threads(own)
