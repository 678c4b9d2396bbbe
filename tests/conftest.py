"""Shared test setup."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests run tiny tensors: one thread is fastest and avoids oversubscribing a 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
