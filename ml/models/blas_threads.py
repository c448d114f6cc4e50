"""One BLAS thread per caller while work runs two calls side by side, safe when such spans overlap.

Matching local features is a matrix product (BLAS) followed by single-threaded numpy and OpenCV work.
Two pairs verified at once on one BLAS thread each fill the two cores better than one pair at a time on
a two-thread BLAS (the shortlist of a query: p95 ~93 -> ~67 ms here), and two calibration queries at
once likewise. The BLAS thread count is process-wide, so a plain `threadpool_limits` block per caller
would race: the caller that leaves first would restore two threads under the other, and the one that
leaves last would restore the one thread it found. Here the first caller in sets the limit, the last
one out restores what the process had.

The libraries are found once, on first use (by then numpy, torch, OpenCV and faiss are loaded): finding them
reads the process's memory map, ~5 ms that every photo's verification paid before this (threadpoolctl's own
`threadpool_limits` finds them anew each time).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_holders = 0
_limiter = None  # threadpoolctl's limiter while someone holds the limit
_controller: ThreadpoolController | None = None


@contextmanager
def one_blas_thread() -> Iterator[None]:
    global _holders, _limiter, _controller
    with _lock:
        if _holders == 0:
            _controller = _controller or ThreadpoolController()
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
