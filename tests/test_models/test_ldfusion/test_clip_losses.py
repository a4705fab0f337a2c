"""LDFusion's language loss: hand computations, gradients, entropy filter, shared crops."""
import math

import pytest
import torch

from mmrisfusion.models.clip import HFCLIPEncoder
from mmrisfusion.models.losses import (
    CLIPLanguageLoss,
    clip_losses,
    directional_loss,
    image_entropy,
    similarity_loss,
)
from mmrisfusion.models.utils import cut_patches, sample_affine_crops
from mmrisfusion.registry import MODELS

E1, E2, E3 = torch.eye(3)


@pytest.mark.parametrize('fused, expected', [
    # Anchors t_v = e1, t_i = e2, target p = e3; images v = e1, i = e2.
    (E3, 0.0),   # moves from each image exactly as the text moves to the target
    (E1, 0.75),  # = VIS: 0.5 * (1 - 0) + 0.5 * (1 - 1/2)
    (E2, 0.75),  # = IR: 0.5 * (1 - 1/2) + 0.5 * (1 - 0)
    # -e3: norm(f - v) = -(1, 0, 1)/sqrt2 is orthogonal to (-1, 0, 1)/sqrt2, and
    # norm(f - i) = -(0, 1, 1)/sqrt2 to (0, -1, 1)/sqrt2: 0.5 * 1 + 0.5 * 1
    (-E3, 1.0),
])
def test_directional_loss_by_hand(fused, expected):
    loss = directional_loss(fused[None], E1[None], E2[None], E3, E1, E2)
    torch.testing.assert_close(loss, torch.tensor([expected]))


def test_similarity_loss_by_hand():
    fused = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    loss = similarity_loss(fused, E1.expand(2, 3), E2.expand(2, 3))
    torch.testing.assert_close(loss, torch.tensor([0.5, 1 - 1 / math.sqrt(2)]))


def test_image_entropy():
    levels = torch.arange(256.0) / 255
    assert image_entropy(levels.view(1, 1, 16, 16)).item() == pytest.approx(8.0)
    assert image_entropy(torch.full((1, 1, 4, 4), 0.3)).item() == 0.0
    halves = torch.tensor([0.0, 1.0, 0.0, 1.0]).view(1, 1, 2, 2)
    assert image_entropy(halves).item() == pytest.approx(1.0)
    # 64 equally used levels: exactly 6 bits (not above the published threshold).
    sixty_four = (torch.arange(64.0).repeat(4) * 4 / 256).view(1, 1, 16, 16)
    assert image_entropy(sixty_four).item() == pytest.approx(6.0)


@pytest.fixture(scope='module')
def clip(hf_clip_dir):
    return HFCLIPEncoder(pretrained=str(hf_clip_dir))


def _images(batch=2, size=48, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, 1, size, size, generator=gen) for _ in range(3)]


def test_global_terms_match_hand_formula(clip):
    loss = CLIPLanguageLoss(clip=clip, patch_weight=0.0, loss_weight=0.5, return_terms=True)
    fused, vis, ir = _images()
    terms = loss(fused, vis, ir)
    assert set(terms) == {'loss_clip_sim', 'loss_clip_dir'}
    f, v, i = clip.encode_image(fused), clip.encode_image(vis), clip.encode_image(ir)
    target, t_v, t_i = clip.encode_text(['a clear image with detailed background and '
                                         'salient objects', 'a visible gray image',
                                         'an infrared image'])
    cos = torch.nn.functional.cosine_similarity
    d_v = (f - v) / (f - v).norm(dim=1, keepdim=True)
    d_i = (f - i) / (f - i).norm(dim=1, keepdim=True)
    t_dv = (target - t_v) / (target - t_v).norm()
    t_di = (target - t_i) / (target - t_i).norm()
    by_hand_dir = (0.5 * (1 - (d_v * t_dv).sum(1)) + 0.5 * (1 - (d_i * t_di).sum(1))).mean()
    by_hand_sim = (0.5 * (1 - cos(f, v)) + 0.5 * (1 - cos(f, i))).mean()
    torch.testing.assert_close(terms['loss_clip_dir'], 0.5 * 2.0 * by_hand_dir)
    torch.testing.assert_close(terms['loss_clip_sim'], 0.5 * 6.0 * by_hand_sim)
    # Scalar form (the fusion-term contract) is the sum.
    scalar = CLIPLanguageLoss(clip=clip, patch_weight=0.0, loss_weight=0.5)(fused, vis, ir)
    torch.testing.assert_close(scalar, sum(terms.values()))


def test_gradients_reach_fused_image(clip):
    loss = CLIPLanguageLoss(clip=clip, num_patches=4, entropy_threshold=0.0,
                            return_terms=True)
    fused, vis, ir = _images()
    for name in ('loss_clip_sim', 'loss_clip_dir', 'loss_clip_patch'):
        leaf = fused.clone().requires_grad_(True)
        loss(leaf, vis, ir)[name].backward()
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all(), name
        assert leaf.grad.abs().sum() > 0, name


def test_entropy_filter_and_mean_over_all_patches(clip):
    torch.manual_seed(0)
    noise = torch.rand(3, 1, 64, 64)
    flat = torch.full((3, 1, 64, 64), 0.5)
    # Sample 0: both informative -> kept; 1: VIS flat -> rejected; 2: IR flat -> rejected.
    vis = torch.stack([noise[0], flat[1], noise[2]])
    ir = torch.stack([noise[1], noise[0], flat[2]])
    fused = torch.rand(3, 1, 64, 64)
    crops = sample_affine_crops(4, 40, 64, 64)
    loss = CLIPLanguageLoss(clip=clip, num_patches=4)
    vis_emb, ir_emb = clip.encode_image(vis), clip.encode_image(ir)
    value, keep = loss.patch_loss(fused, vis, ir, vis_emb, ir_emb, crops)
    assert keep.tolist() == [True, False, False] * 4
    patches = cut_patches(fused, crops, clip.image_size)
    per_patch = directional_loss(clip.encode_image(patches), vis_emb.repeat(4, 1),
                                 ir_emb.repeat(4, 1), loss.target_txt, loss.vis_txt,
                                 loss.ir_txt)
    # Rejected patches add 0 but count: the mean is over all 12 patches.
    torch.testing.assert_close(value, per_patch[keep].sum() / 12)
    # The same crops through forward give the same term.
    terms = CLIPLanguageLoss(clip=clip, num_patches=4, sim_weight=0, global_weight=0,
                             return_terms=True)(fused, vis, ir, patch_crops=crops)
    torch.testing.assert_close(terms['loss_clip_patch'], 10.0 * value)


def test_same_crop_for_vis_ir_and_fused(clip, monkeypatch):
    seen = []

    def spy(images, crops, size):
        seen.append(crops)
        return cut_patches(images, crops, size)

    monkeypatch.setattr(clip_losses, 'cut_patches', spy)
    loss = CLIPLanguageLoss(clip=clip, num_patches=3, sim_weight=0, global_weight=0)
    image = torch.rand(2, 1, 48, 48)
    loss(image, image.clone(), image.clone())
    assert len(seen) == 3 and all(crops is seen[0] for crops in seen)


def test_one_patch_side_per_step_and_vertical_shifts_only(clip):
    """Published sampler: one side int(min(H, W) * U(0.5, 0.8)) for all crops of a step,
    RandomAffine translate=(0, 0.1): no horizontal shift, up to 10% vertical."""
    loss = CLIPLanguageLoss(clip=clip, num_patches=32)
    torch.manual_seed(0)
    sides = set()
    for _ in range(40):
        crops = loss.sample_patch_crops(224, 300)
        assert isinstance(crops.side, int) and len(crops) == 32
        assert int(224 * 0.5) <= crops.side <= int(224 * 0.8)
        assert (crops.translate[:, 0] == 0).all()
        assert crops.translate[:, 1].abs().max() <= round(0.1 * crops.side)
        sides.add(crops.side)
    assert len(sides) > 10  # a new side every step


def test_registered_and_checked(hf_clip_dir):
    loss = MODELS.build(dict(type='CLIPLanguageLoss',
                             clip=dict(type='HFCLIPEncoder', pretrained=str(hf_clip_dir)),
                             target_prompt='a sharp image', num_patches=2))
    assert loss.prompts[0] == 'a sharp image'
    assert loss.loss_name == 'loss_clip'
    assert loss.state_dict() == {}  # neither CLIP weights nor prompt embeddings are saved
    with pytest.raises(ValueError, match='clip='):
        CLIPLanguageLoss()
    with pytest.raises(ValueError, match="start with 'loss_'"):
        CLIPLanguageLoss(clip=loss.clip, loss_name='clip')
    with pytest.raises(ValueError, match='translate'):
        CLIPLanguageLoss(clip=loss.clip, translate=0.1)
    with pytest.raises(ValueError, match=r'fused_y.*\(B, 1, H, W\)'):
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
