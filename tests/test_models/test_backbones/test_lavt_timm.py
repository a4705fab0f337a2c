"""LAVTTimmBackbone: LAVT's language modules after the stages of tiny timm models, random
weights (nothing downloaded), in the three layouts timm gives features in."""
import json
import math
import runpy
import socket
import sys
from pathlib import Path

import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.model import convert_sync_batchnorm

from mmrisfusion.datasets.synthetic_mmris import make_synthetic_splits
from mmrisfusion.models.backbones import LAVTTimmBackbone
from mmrisfusion.registry import MODELS
from mmrisfusion.utils.checkpoint import load_weights_only

REPO_ROOT = Path(__file__).resolve().parents[3]
TEXT_DIMS = 24
#: Tiny members of three families: a CNN (maps NCHW), a hierarchical transformer (timm's Swin,
#: maps NHWC) and a plain one (ViT, tokens with a class token).
CNN = dict(model_name='convnext_atto', dims=(8, 16, 32, 64), depths=(1, 1, 1, 1))
SWIN = dict(model_name='swin_tiny_patch4_window7_224', embed_dim=16, depths=(1, 1, 1, 1),
            num_heads=(1, 1, 2, 2), window_size=4, img_size=64)
VIT = dict(model_name='vit_tiny_patch16_224', img_size=64, embed_dim=32, depth=3, num_heads=2)
TINY = dict(cnn=CNN, swin=SWIN, vit=VIT)


def _text(batch=2, words=5):
    feats = torch.randn(batch, words, TEXT_DIMS)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])[:batch]
    return feats, mask


def _build(kind, **kwargs):
    torch.manual_seed(0)
    backbone = LAVTTimmBackbone(text_dims=TEXT_DIMS, **TINY[kind], **kwargs)
    backbone.init_weights()
    return backbone


@pytest.mark.parametrize('kind, fmt, shapes', [
    ('cnn', 'NCHW', [(8, 16), (16, 8), (32, 4), (64, 2)]),
    ('swin', 'NHWC', [(16, 16), (32, 8), (64, 4), (128, 2)]),
    ('vit', 'NLC', [(32, 4), (32, 4), (32, 4)]),
])
def test_language_aware_maps_in_every_layout(kind, fmt, shapes):
    backbone = _build(kind)
    assert backbone.feature_format == fmt
    assert backbone.num_features == [c for c, _ in shapes]
    assert len(backbone.lang_gates) == len(shapes) - 1  # none after the last stage
    text, mask = _text()
    outs = backbone(torch.randn(2, 3, 64, 64), text, mask)
    assert [tuple(o.shape) for o in outs] == [(2, c, s, s) for c, s in shapes]
    sum(o.square().mean() for o in outs).backward()
    assert [n for n, p in backbone.named_parameters() if p.grad is None] == []
    # The words steer every stage; padded words do not (eval: no random drop path).
    backbone.eval()
    image = torch.randn(2, 3, 64, 64)
    padded = text.clone()
    padded[0, 3:] = 100.0
    with torch.no_grad():
        base, changed, same = (backbone(image, words, mask)
                               for words in (text, text * 2, padded))
    assert all(not torch.allclose(a, b) for a, b in zip(base, changed))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(base, same))


@pytest.mark.parametrize('kind', ['cnn', 'swin'])
def test_gated_stream_is_what_the_next_stage_reads(kind):
    """By hand, stage by stage, on timm's modules: X_i -> F_i = PWAM_i(X_i) -> output
    LN_i(F_i); the next stage reads X_i + gate_i(F_i) F_i."""
    backbone = _build(kind).eval()
    text, mask = _text()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outs = backbone(x, text, mask)
        expected, stage = [], 0
        channels_last = backbone.feature_format == 'NHWC'
        for name, module in backbone.body.items():
            x = module(x)  # the hooks leave timm's network alone outside forward()
            if name not in backbone.body.return_layers:
                continue
            maps = x if channels_last else x.permute(0, 2, 3, 1)
            tokens = maps.flatten(1, 2)
            feat = backbone.pwams[stage](tokens, text.transpose(1, 2), mask)
            out = backbone.norms[stage](feat).view(maps.shape[:3] + (-1, ))
            expected.append(out.permute(0, 3, 1, 2))
            if stage < len(backbone.lang_gates):
                tokens = tokens + backbone.lang_gates[stage](feat) * feat
                maps = tokens.view(maps.shape)
                x = maps if channels_last else maps.permute(0, 3, 1, 2)
            stage += 1
    assert stage == len(outs)
    for ours, reference in zip(outs, expected):
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


def test_closed_gates_leave_the_timm_features_unchanged():
    """With every gate at 0, each output is LN(PWAM(timm's own feature)); for ViT the class
    token rides along untouched."""
    backbone = _build('vit').eval()
    for gate in backbone.lang_gates:
        torch.nn.init.zeros_(gate.fc2.weight)
    text, mask = _text()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outs = backbone(x, text, mask)
        plain = backbone.body(x)  # timm's NCHW features, hooks idle
        for stage, (ours, feature) in enumerate(zip(outs, plain)):
            tokens = feature.flatten(2).transpose(1, 2)
            feat = backbone.pwams[stage](tokens, text.transpose(1, 2), mask)
            reference = backbone.norms[stage](feat).transpose(1, 2).reshape(ours.shape)
            torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


def test_local_weights_only_and_nothing_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')

    def no_network(*args, **kwargs):
        raise AssertionError('LAVTTimmBackbone tried to reach the network')

    monkeypatch.setattr(socket.socket, 'connect', no_network)
    monkeypatch.setattr(socket, 'create_connection', no_network)
    source = timm.create_model('convnext_atto', dims=(8, 16, 32, 64), depths=(1, 1, 1, 1))
    torch.nn.init.constant_(source.stem[0].weight, 0.25)
    for suffix in ('pth', 'safetensors'):
        path = tmp_path / f'convnext_atto.{suffix}'
        if suffix == 'pth':
            torch.save(source.state_dict(), path)
        else:
            from safetensors.torch import save_file
            save_file(source.state_dict(), str(path))
        loaded = LAVTTimmBackbone(text_dims=TEXT_DIMS, pretrained_cfg_overlay=dict(file=str(path)),
                                  **CNN)
        for key, value in loaded.body.state_dict().items():
            torch.testing.assert_close(value, source.state_dict()[key.replace('_', '.', 1)])
    random = LAVTTimmBackbone(text_dims=TEXT_DIMS, **CNN)  # a name with hub weights: unused
    assert not torch.equal(random.body.stem_0.weight, source.stem[0].weight)
    with pytest.raises(FileNotFoundError, match='missing.safetensors.*Nothing is downloaded'):
        LAVTTimmBackbone(pretrained_cfg_overlay=dict(file=str(tmp_path / 'missing.safetensors')),
                         **CNN)
    with pytest.raises(ValueError, match='local file only'):
        LAVTTimmBackbone('hf-hub:timm/convnext_atto.d2_in1k')
    with pytest.raises(ValueError, match='local file only'):
        LAVTTimmBackbone(pretrained_cfg_overlay=dict(url='https://example.org/w.pth'), **CNN)


def test_syncbn_that_drops_timms_fused_activation_is_stopped():
    backbone = LAVTTimmBackbone('mobilenetv3_small_050', text_dims=TEXT_DIMS)
    text, mask = _text()
    backbone.train()(torch.randn(2, 3, 64, 64), text, mask)  # BatchNormAct2d intact: fine
    converted = convert_sync_batchnorm(LAVTTimmBackbone('mobilenetv3_small_050',
                                                        text_dims=TEXT_DIMS))
    with pytest.raises(RuntimeError, match='BatchNormAct2d and is now SyncBatchNorm'):
        converted.train()(torch.randn(2, 3, 64, 64), text, mask)


def test_registered_and_other_arguments_are_checked():
    backbone = MODELS.build(dict(type='LAVTTimmBackbone', text_dims=TEXT_DIMS,
                                 out_indices=(1, 2), fusion_heads=(1, 2), **CNN))
    assert backbone.num_features == [16, 32] and backbone.pwams[1].num_heads == 2
    with pytest.raises(ValueError, match='fusion_heads has 3 entries for 4'):
        LAVTTimmBackbone(text_dims=TEXT_DIMS, fusion_heads=(1, 1, 1), **CNN)
    with pytest.raises(ValueError, match=r'text_feats \(B, T, D\)'):
        _build('cnn')(torch.randn(1, 3, 64, 64), torch.randn(1, 5), torch.ones(1, 5))


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic_mmris')
    make_synthetic_splits(str(root), num_rows=dict(train=8, val=4), size=64, seed=0)
    return root


@pytest.mark.parametrize('kind', ['cnn', 'swin'])
def test_trains_with_tools_train(kind, tiny_ris_config_file, data_root, tmp_path, monkeypatch):
    """The tiny RIS-FUSION with a timm backbone instead of its Swin: one epoch (2 iterations
    and a validation) with tools/train.py, run in this process."""
    sizes = dict(cnn=dict(CNN, dims=(16, 32, 64, 128)), swin=SWIN)[kind]
    config = tmp_path / f'risfusion_tiny_{kind}.py'
    config.write_text(
        f"_base_ = ['{tiny_ris_config_file}']\n"
        f"model = dict(backbone=dict(_delete_=True, type='LAVTTimmBackbone', text_dims=64, "
        f"**{sizes!r}), decode_head=dict(in_channels=(16, 32, 64, 128)))\n")
    work_dir = tmp_path / 'work'
    monkeypatch.setattr(sys, 'argv', [
        'train.py', str(config), '--work-dir', str(work_dir), '--cfg-options',
        'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
        f'experiment_name=timm_{kind}', f'visualizer.name=timm_{kind}',
        *[f'{split}_dataloader.dataset.data_root={data_root}' for split in ('train', 'val')]])
    # The Runner logs and saves the config text, which yapf formats in seconds per call:
    # not what this test is about.
    monkeypatch.setattr(Config, 'pretty_text', property(lambda self: '# (not formatted)'))
    runpy.run_path(str(REPO_ROOT / 'tools' / 'train.py'), run_name='__main__')
    assert (work_dir / 'epoch_1.pth').is_file()
    weights = load_weights_only(str(work_dir / 'epoch_1.pth'))['state_dict']
    assert any(key.startswith('backbone.body.') for key in weights)
    scalars = [json.loads(line) for line in
               next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    losses = [entry['decode.loss_dice'] for entry in scalars if 'decode.loss_dice' in entry]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    assert any('oIoU' in entry for entry in scalars)
