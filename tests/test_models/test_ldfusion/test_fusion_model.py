"""The fusion-only model: modes, training crops, colour output, a tiny training run."""
import numpy as np
import pytest
import torch
from PIL import Image

from mmrisfusion.models.segmentors import FusionModel
from mmrisfusion.models.utils.color import (
    normalize,
    rgb_to_luma,
    rgb_to_luma_uint8,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from mmrisfusion.structures import RISDataSample

MEAN = torch.tensor([123.675, 116.28, 103.53]) / 255
STD = torch.tensor([58.395, 57.12, 57.375]) / 255


def tiny_model(hf_clip_dir, **kwargs) -> FusionModel:
    return FusionModel(
        fuser=dict(type='LDFusionNet', base_channels=4, mlp_channels=16),
        losses=[dict(type='CLIPLanguageLoss',
                     clip=dict(type='HFCLIPEncoder', pretrained=str(hf_clip_dir)),
                     num_patches=4, return_terms=True),
                dict(type='PerceptualMaxLoss', random_init=True, width_divisor=16,
                     loss_weight=10.0)],
        **kwargs)


def real_pair(data_dir, size=64):
    """A RoadScene pair as normalised inputs (VIS RGB, IR replicated to RGB)."""
    root = data_dir / 'ivif' / 'roadscene'
    name = sorted(p.name for p in (root / 'vi').iterdir())[0]
    vis = Image.open(root / 'vi' / name).convert('RGB').resize((size, size), Image.BILINEAR)
    ir = Image.open(root / 'ir' / name).convert('RGB').resize((size, size), Image.BILINEAR)
    tensors = [torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255
               for img in (vis, ir)]
    return dict(vis=normalize(tensors[0], MEAN, STD), ir=normalize(tensors[1], MEAN, STD))


def test_modes_and_colour(hf_clip_dir, data_dir):
    torch.manual_seed(0)
    model = tiny_model(hf_clip_dir)
    inputs = real_pair(data_dir)
    losses = model(inputs, None, mode='loss')
    assert set(losses) == {'loss_clip_sim', 'loss_clip_dir', 'loss_clip_patch',
                           'loss_perceptual'}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())

    fused = model(inputs, mode='tensor')
    assert fused.shape == (1, 3, 64, 64) and 0 <= fused.min() and fused.max() <= 1
    # Y from the fuser, Cb and Cr from VIS, recomposed and clamped to [0, 1].
    vis = inputs['vis'] * STD.view(1, 3, 1, 1) + MEAN.view(1, 3, 1, 1)
    ir = inputs['ir'] * STD.view(1, 3, 1, 1) + MEAN.view(1, 3, 1, 1)
    vis_ycbcr = rgb_to_ycbcr(vis)
    fused_y = model.fuser(vis_ycbcr[:, :1], rgb_to_luma(ir))
    expected = ycbcr_to_rgb(torch.cat([fused_y, vis_ycbcr[:, 1:]], 1)).clamp(0, 1)
    torch.testing.assert_close(fused, expected)

    # predict: padding removed, PixelData (3, h, w) in [0, 1] at the network's resolution.
    sample = RISDataSample(metainfo=dict(padding_size=[0, 4, 0, 8], ori_shape=(28, 30)))
    out = model(inputs, [sample], mode='predict')[0]
    torch.testing.assert_close(out.pred_fused.data, fused[0, :, :56, :60])
    flipped = RISDataSample(metainfo=dict(flip=True, flip_direction='horizontal'))
    out = model(inputs, [flipped], mode='predict')[0]
    torch.testing.assert_close(out.pred_fused.data, fused[0].flip(2))
    with pytest.raises(KeyError, match="'vis' and 'ir'"):
        model(torch.rand(1, 3, 8, 8), mode='tensor')
    with pytest.raises(ValueError, match='Invalid mode'):
        model(inputs, mode='train')


def test_train_crops(hf_clip_dir):
    torch.manual_seed(0)
    model = tiny_model(hf_clip_dir, train_crop=dict(size=16))
    vis = torch.rand(2, 1, 40, 48) * 0.5
    ir = vis.clone()
    # Sample 1 is padded by 8 rows and 16 columns with a value outside the image's range.
    vis[1, :, 32:] = vis[1, :, :, 32:] = 1.0
    ir[1, :, 32:] = ir[1, :, :, 32:] = 1.0
    samples = [RISDataSample(), RISDataSample(metainfo=dict(padding_size=[0, 16, 0, 8]))]
    for _ in range(20):
        vis_c, ir_c = model.train_crops(vis, ir, samples)
        assert vis_c.shape == ir_c.shape == (2, 1, 16, 16)
        torch.testing.assert_close(vis_c, ir_c)  # the same crop for VIS and IR
        assert vis_c[1].max() <= 0.5 + 1e-6  # never reaches into the padding
    # Flat crops are drawn again: a half-flat image gives informative crops.
    half = torch.zeros(1, 1, 64, 64)
    half[..., :, 32:] = torch.rand(1, 1, 64, 32)
    stds = [model.train_crops(half, half)[0].std().item() for _ in range(20)]
    assert min(stds) >= 0.05
    with pytest.raises(KeyError, match='unknown keys'):
        tiny_model(hf_clip_dir, train_crop=dict(side=16))


def test_training_vis_luma_is_8_bit_as_published(hf_clip_dir, data_dir):
    inputs = real_pair(data_dir)
    vis = inputs['vis'] * STD.view(1, 3, 1, 1) + MEAN.view(1, 3, 1, 1)
    model = tiny_model(hf_clip_dir)
    assert model.train_vis_luma == 'uint8'
    train_y, _ = model.lumas(inputs, train=True)
    torch.testing.assert_close(train_y, rgb_to_luma_uint8(vis), rtol=0, atol=0)
    # Inference, and training with the float option, use the float luma.
    torch.testing.assert_close(model.lumas(inputs)[0], rgb_to_luma(vis))
    float_model = tiny_model(hf_clip_dir, train_vis_luma='float')
    torch.testing.assert_close(float_model.lumas(inputs, train=True)[0], rgb_to_luma(vis))
    with pytest.raises(ValueError, match='train_vis_luma'):
        tiny_model(hf_clip_dir, train_vis_luma='uint16')


def test_tiny_training_lowers_the_loss(hf_clip_dir, data_dir):
    torch.manual_seed(0)
    model = tiny_model(hf_clip_dir, train_crop=dict(size=48))
    inputs = real_pair(data_dir, size=64)
    inputs = {k: v.repeat(2, 1, 1, 1) for k, v in inputs.items()}
    optim = torch.optim.Adam(model.parameters(), lr=5e-3)
    history = []
    for _ in range(40):
        losses = model(inputs, None, mode='loss')
        total = sum(losses.values())
        optim.zero_grad()
        total.backward()
        optim.step()
        history.append(total.item())
    assert np.mean(history[-8:]) < 0.8 * np.mean(history[:8]), history


# The flip directions of mmseg's RandomFlip (mmcv's): 'diagonal' flips both axes.
FLIP_DIMS = {'horizontal': (-1, ), 'vertical': (-2, ), 'diagonal': (-2, -1)}


@pytest.mark.parametrize('direction', list(FLIP_DIMS))
def test_predict_removes_the_padding_and_undoes_a_flip(direction):
    torch.manual_seed(0)
    model = FusionModel(fuser=dict(type='LDFusionNet', base_channels=4, mlp_channels=16),
                        losses=dict(type='LumaMSELoss'))
    inputs = dict(vis=torch.randn(1, 3, 24, 20), ir=torch.randn(1, 3, 24, 20))
    meta = dict(flip=True, flip_direction=direction, padding_size=(0, 4, 0, 6))
    with torch.no_grad():
        fused = model(inputs, mode='tensor')
        out = model(inputs, [RISDataSample(metainfo=meta)], mode='predict')[0]
    expected = fused[0, :, :18, :16].flip(FLIP_DIMS[direction])
    torch.testing.assert_close(out.pred_fused.data, expected)
