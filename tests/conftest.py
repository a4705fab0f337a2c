"""Shared fixtures: where the shared reference files and data live."""
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / 'shared'


@pytest.fixture(scope='session')
def shared_dir() -> Path:
    """``../shared`` next to the checkout: reference outputs and real IR/VIS pairs."""
    if not SHARED_DIR.is_dir():
        pytest.fail(f'{SHARED_DIR} is missing: tests compare against its reference files')
    return SHARED_DIR


@pytest.fixture(scope='session', autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread; on 2 shared cores more threads only contend."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
