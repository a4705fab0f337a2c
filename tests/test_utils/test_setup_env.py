"""``mmrisfusion::`` config bases: a user's config outside the repository inherits ours."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

import mmrisfusion  # noqa: F401  (registers the `mmrisfusion::` scope, as the tools do)

REPO_ROOT = Path(__file__).resolve().parents[2]

DEMO = 'risfusion/risfusion_swin-mini_minilm_1xb16-1k_mm-ris-synthetic-128x128.py'
USER_CONFIG = f'''
_base_ = [
    'mmrisfusion::{DEMO}',
]
model = dict(fuser=dict(base_channels=4))
train_cfg = dict(max_iters=5)
'''


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_resolves_to_the_shipped_configs():
    for name in (DEMO, '_base_/default_runtime.py', '_base_/models/risfusion_swin-b.py'):
        path, scope = Config._get_cfg_path(f'mmrisfusion::{name}', '')
        assert scope == 'mmrisfusion'
        assert Path(path).read_text() == (REPO_ROOT / 'configs' / name).read_text(), name


def test_user_config_inherits_mmrisfusion_bases(tmp_path):
    cfg = Config.fromfile(write(tmp_path / 'my_config.py', USER_CONFIG))
    # overridden here
    assert cfg.model.fuser.base_channels == 4
    assert cfg.train_cfg.max_iters == 5
    # from the demo config and, through it, from its own relative bases
    assert cfg.model.fuser.fusion_block.type == 'LangGatedFusion'
    assert cfg.model.backbone.embed_dims == 32
    assert cfg.default_scope == 'mmrisfusion'  # _base_/default_runtime.py
    assert cfg.train_dataloader.dataset.type == 'MMRISDataset'  # _base_/datasets/...
    tokenize = [step for step in cfg.train_pipeline if step.type == 'TokenizeText']
    assert tokenize[0].tokenizer_path == 'data/pretrained/all-MiniLM-L6-v2'


def test_several_mmrisfusion_bases(tmp_path):
    cfg = Config.fromfile(write(tmp_path / 'my_config.py', '''
_base_ = ['mmrisfusion::_base_/default_runtime.py',
          'mmrisfusion::_base_/schedules/schedule_10e.py']
'''))
    assert cfg.default_scope == 'mmrisfusion'
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop'


def test_missing_config_is_a_clear_error(tmp_path):
    path = write(tmp_path / 'my_config.py',
                 "_base_ = ['mmrisfusion::risfusion/no_such_config.py']\n")
    with pytest.raises(FileNotFoundError, match=r'\.mim/configs/risfusion/no_such_config\.py'):
        Config.fromfile(path)


def test_fresh_process_outside_the_repository(tmp_path):
    """As a user runs it: another folder, no PYTHONPATH, the installed package only."""
    path = write(tmp_path / 'my_config.py', USER_CONFIG)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    code = ('import mmrisfusion\nfrom mmengine.config import Config\n'
            f'cfg = Config.fromfile({path!r})\n'
            'print(cfg.model.fuser.base_channels, cfg.model.backbone.embed_dims)')
    proc = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ['4', '32']
