import json

import pytest
import torch

from mmrisfusion.models.fusers import UNetFuser
from mmrisfusion.models.utils import convert_official_fuser, official_fuser_config


@pytest.fixture(scope='module')
def official_fuser(derived_reference):
    """A tiny fuser state dict in the official layout."""
    return derived_reference.checkpoint['prefusion_model']


def test_tiny_official_fuser_loads_strict(official_fuser):
    cfg = official_fuser_config(official_fuser)
    assert cfg['base_channels'] == 16 and cfg['inject_levels'] == (3, 4)
    assert (cfg['text_dim'], cfg['token_dim']) == (768, 256)
    assert cfg['fusion_block'] == dict(type='LangGatedFusion', embed_dims=256,
                                       gate_channels=128)
    cfg.pop('type')
    fuser = UNetFuser(**cfg)
    fuser.load_state_dict(convert_official_fuser(official_fuser), strict=True)


def test_ddp_prefix_is_removed(official_fuser):
    wrapped = {f'module.{k}': v for k, v in official_fuser.items()}
    assert list(convert_official_fuser(wrapped)) == list(official_fuser)


def test_not_a_fuser_is_refused():
    with pytest.raises(KeyError, match='mean_vis'):
        convert_official_fuser({'backbone.patch_embed.proj.weight': torch.zeros(1)})
    with pytest.raises(TypeError, match='prefusion_model'):
        convert_official_fuser([1, 2])


def test_full_size_key_coverage_both_ways(data_dir):
    with open(data_dir / 'risfusion' / 'keys_swin-b.json') as f:
        official = json.load(f)['prefusion_model']
    ours = {k: list(v.shape) for k, v in UNetFuser().state_dict().items()}
    assert set(official) - set(ours) == set()
    assert set(ours) - set(official) == set()
    assert ours == official
    fake = {k: torch.zeros(v) for k, v in official.items()}
    cfg = official_fuser_config(fake)
    assert cfg['base_channels'] == 32 and cfg['inject_levels'] == (3, 4)
