"""Ctrl-C that never tears a file: SIGINT is deferred while a file is being written.

Python raises :class:`KeyboardInterrupt` between any two bytecodes, including
inside callbacks of C extensions (h5py, safetensors) that cannot propagate it:
there it is printed as "Exception ignored in ..." and swallowed, and the run
goes on. :func:`deferred_sigint` wraps a write: a SIGINT that arrives inside
only sets a flag, and the interrupt is raised when the block ends (after the
atomic rename), so the file is either fully written or not there. A second
SIGINT inside the block is remembered the same way (writes are short).

Only the main thread can install signal handlers; elsewhere (and when SIGINT is
not handled by Python's default handler, e.g. ignored by the parent shell) the
context manager does nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

INTERRUPT_MESSAGE = "interrupted; rerun with --resume to continue"
"""The one line the CLI prints on Ctrl-C (exit code 130)."""


@contextlib.contextmanager
def deferred_sigint() -> Iterator[None]:
    """Defer SIGINT until the end of the block, then raise :class:`KeyboardInterrupt`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler and not getattr(previous, "_simlab_deferred", False):
        yield  # SIGINT ignored or handled by someone else: leave it alone
        return
    if getattr(previous, "_simlab_deferred", False):
        yield  # nested: the outer block already defers
        return
    pending: list[Any] = []

    def handler(signum: int, frame: Any) -> None:
        pending.append(signum)

    handler._simlab_deferred = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt
