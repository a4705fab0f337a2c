"""Batched crops + RandomAffine: torchvision's pixels for torchvision's parameters."""
import pytest
import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from mmrisfusion.models.utils import (
    PUBLISHED_AFFINE,
    cut_patches,
    cut_training_crops,
    sample_affine_crops,
)


def _torchvision_affine(image, crops, k):
    """torchvision's RandomAffine with the parameters of crop ``k`` (nearest, fill 0)."""
    return TF.affine(image, float(crops.angle[k]), [int(t) for t in crops.translate[k]],
                     float(crops.scale[k]), [float(s) for s in crops.shear[k]],
                     interpolation=InterpolationMode.NEAREST, fill=[0.0] * image.shape[-3])


def test_patches_equal_torchvision_pixel_for_pixel():
    """Compose([RandomCrop(s), RandomAffine(...), Resize(224)]) on every image, per crop."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 1, 60, 70, generator=gen)
    crops = sample_affine_crops(6, 37, 60, 70, generator=gen)
    patches = cut_patches(images, crops, 50)
    assert patches.shape == (12, 1, 50, 50)
    for k in range(6):
        expected = TF.crop(images, int(crops.top[k]), int(crops.left[k]), 37, 37)
        expected = _torchvision_affine(expected, crops, k)
        expected = TF.resize(expected, 50, InterpolationMode.BILINEAR, antialias=True)
        # Crop k of image b is at k * B + b.
        torch.testing.assert_close(patches[2 * k:2 * k + 2], expected, rtol=0, atol=0)


def test_training_crops_equal_torchvision_with_padding_and_batch_offsets():
    """RandomCrop(pad_if_needed, reflect) + RandomAffine, images smaller than the batch."""
    gen = torch.Generator().manual_seed(1)
    batch = torch.rand(3, 2, 40, 50, generator=gen)
    # (top, left, height, width) of each image: inside, smaller than the crop, offset.
    boxes = torch.tensor([[0, 0, 40, 50], [0, 0, 20, 31], [5, 7, 30, 36]])
    crops = sample_affine_crops(3, 32, boxes[:, 2], boxes[:, 3], generator=gen)
    out = cut_training_crops(batch, crops, boxes)
    assert out.shape == (3, 2, 32, 32)
    for b, (top, left, height, width) in enumerate(boxes.tolist()):
        image = batch[b:b + 1, :, top:top + height, left:left + width]
        if width < 32:
            image = TF.pad(image, [32 - width, 0], padding_mode='reflect')
        if height < 32:
            image = TF.pad(image, [0, 32 - height], padding_mode='reflect')
        expected = TF.crop(image, int(crops.top[b]), int(crops.left[b]), 32, 32)
        expected = _torchvision_affine(expected, crops, b)
        torch.testing.assert_close(out[b:b + 1], expected, rtol=0, atol=0)


def test_sampled_parameters_follow_the_published_affine():
    crops = sample_affine_crops(2000, 100, 224, 300, generator=torch.Generator().manual_seed(2))
    assert PUBLISHED_AFFINE == dict(degrees=5.0, translate=(0.0, 0.1), scale=(1.0, 1.5),
                                    shear=5.0)
    assert crops.side == 100 and len(crops) == 2000
    assert crops.top.min() >= 0 and crops.top.max() == 224 - 100
    assert crops.left.min() >= 0 and crops.left.max() == 300 - 100
    # translate=(0, 0.1): never a horizontal shift, vertical shifts up to 10 px both ways.
    assert (crops.translate[:, 0] == 0).all()
    assert crops.translate[:, 1].min() == -10 and crops.translate[:, 1].max() == 10
    assert crops.angle.abs().max() <= 5 and crops.angle.abs().max() > 4.9
    assert 1.0 <= crops.scale.min() and crops.scale.max() <= 1.5
    assert (crops.shear[:, 1] == 0).all() and crops.shear[:, 0].abs().max() <= 5


def test_images_smaller_than_the_crop_draw_in_the_padded_range():
    crops = sample_affine_crops(500, 32, torch.full((500, ), 20), torch.full((500, ), 40),
                                generator=torch.Generator().manual_seed(3))
    # Height 20 padded by 12 on both ends: 44 rows, offsets 0..12; width 40: offsets 0..8.
    assert crops.top.max() == 12 and crops.left.max() == 8


def test_patches_carry_gradients_and_select_mixes_crops():
    images = torch.rand(2, 1, 40, 40, requires_grad=True)
    crops = sample_affine_crops(3, 20, 40, 40)
    cut_patches(images, crops, 24).sum().backward()
    assert images.grad.abs().sum() > 0
    other = sample_affine_crops(3, 20, 40, 40)
    mixed = crops.select(torch.tensor([False, True, False]), other)
    assert mixed.top.tolist() == [crops.top[0], other.top[1], crops.top[2]]
    torch.testing.assert_close(mixed.shear[1], other.shear[1])
    with pytest.raises(ValueError, match='sides'):
        crops.select(torch.tensor([True, True, True]), sample_affine_crops(3, 10, 40, 40))
    with pytest.raises(ValueError, match='exceeds'):
        cut_patches(images, sample_affine_crops(1, 41, 41, 41), 24)
