import pytest
import torch

from mmrisfusion.models.utils import (
    IMAGENET_MEAN_01,
    IMAGENET_MEAN_255,
    IMAGENET_STD_01,
    IMAGENET_STD_255,
    denormalize,
    normalize,
    rgb_to_luma,
    rgb_to_luma_uint8,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def test_ycbcr_known_values():
    # white, black, pure red, pure blue
    rgb = torch.tensor([[1., 1., 1.], [0., 0., 0.], [1., 0., 0.], [0., 0., 1.]])
    ycc = rgb_to_ycbcr(rgb.T.reshape(1, 3, 4, 1))[0, :, :, 0].T
    expected = torch.tensor([[1., .5, .5], [0., .5, .5], [.299, .5 - .168736, 1.],
                             [.114, 1., .5 - .081312]])
    torch.testing.assert_close(ycc, expected, atol=1e-6, rtol=0)


def test_ycbcr_round_trip_and_luma():
    rgb = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ycc = rgb_to_ycbcr(rgb)
    torch.testing.assert_close(ycbcr_to_rgb(ycc), rgb, atol=1e-6, rtol=0)
    torch.testing.assert_close(rgb_to_luma(rgb), ycc[:, :1])
    gray = rgb[:, :1]
    torch.testing.assert_close(rgb_to_luma(gray.expand(-1, 3, -1, -1)), gray)
    assert rgb_to_luma(gray) is gray


def test_uint8_luma_is_opencvs():
    """OpenCV's COLOR_RGB2YCrCb Y of 8-bit images (LDFusion's training luma), bit for bit,
    also from ImageNet-normalised float32 inputs as the model sees them."""
    import cv2
    import numpy as np
    gen = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (1, 3, 64, 64), generator=gen, dtype=torch.uint8)
    expected = cv2.cvtColor(rgb[0].permute(1, 2, 0).numpy(), cv2.COLOR_RGB2YCrCb)[..., 0]
    mean, std = torch.tensor(IMAGENET_MEAN_255), torch.tensor(IMAGENET_STD_255)
    normalised = normalize(rgb.float(), mean, std)
    recovered = denormalize(normalised, torch.tensor(IMAGENET_MEAN_01),
                            torch.tensor(IMAGENET_STD_01))
    luma = rgb_to_luma_uint8(recovered)
    assert luma.shape == (1, 1, 64, 64)
    np.testing.assert_array_equal((luma[0, 0] * 255).round().byte().numpy(), expected)
    # The float luma rounded to 8 bits; OpenCV's 14-bit coefficients move it by < 0.02 level.
    assert ((luma - rgb_to_luma(rgb.float() / 255)).abs() <= 0.52 / 255).all()


def test_normalize_round_trip_and_clamp():
    img = torch.rand(1, 3, 4, 4)
    norm = normalize(img, IMAGENET_MEAN, IMAGENET_STD)
    torch.testing.assert_close(denormalize(norm, IMAGENET_MEAN, IMAGENET_STD), img)
    out_of_range = normalize(img + 2, IMAGENET_MEAN, IMAGENET_STD)
    assert denormalize(out_of_range, IMAGENET_MEAN, IMAGENET_STD).max() == 1
    assert denormalize(out_of_range, IMAGENET_MEAN, IMAGENET_STD, clamp=False).min() > 1


def test_imagenet_statistics_on_both_scales_are_one_set():
    assert IMAGENET_MEAN_01 == IMAGENET_MEAN and IMAGENET_STD_01 == IMAGENET_STD
    assert IMAGENET_MEAN_255 == pytest.approx(tuple(255 * v for v in IMAGENET_MEAN), abs=1e-9)
    assert IMAGENET_STD_255 == pytest.approx(tuple(255 * v for v in IMAGENET_STD), abs=1e-9)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match='std has 2 channel'):
        denormalize(torch.zeros(1, 3, 2, 2), IMAGENET_MEAN, (1., 1.))
    with pytest.raises(ValueError, match=r'C in \(3,\)'):
        rgb_to_ycbcr(torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r'got shape \(3, 2, 2\)'):
        rgb_to_luma(torch.zeros(3, 2, 2))
