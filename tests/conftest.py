"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run the test on one torch thread, then restore the count. The CI box has 2 shared cores:
    oversubscribed torch threads are ~10x slower there. Test modules that train opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; torch is imported only then."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
