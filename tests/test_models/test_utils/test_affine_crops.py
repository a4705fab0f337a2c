"""Random affine crops: geometry and batch layout."""
import torch

from mmrisfusion.models.utils import apply_affine_crops, random_affine_crop_params


def test_affine_crop_geometry():
    image = torch.rand(2, 1, 24, 24)
    identity = random_affine_crop_params(1, 24, 24, torch.tensor([24.0]), degrees=0,
                                         translate=0, scale=(1.0, 1.0), shear=0)
    torch.testing.assert_close(identity, torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]]))
    torch.testing.assert_close(apply_affine_crops(image, identity, 24), image)
    # Without the affine, half-size crops lie inside the image.
    plain = random_affine_crop_params(16, 24, 36, torch.full((16, ), 12.0), degrees=0,
                                      translate=0, scale=(1.0, 1.0), shear=0)
    corners = plain[:, :, :2].abs().sum(2) + plain[:, :, 2].abs()
    assert (corners <= 1.0 + 1e-5).all()
    theta = random_affine_crop_params(16, 24, 36, torch.full((16, ), 12.0))
    patches = apply_affine_crops(image, theta, 8)
    assert patches.shape == (32, 1, 8, 8)
    # Crop k of image b sits at k * B + b.
    torch.testing.assert_close(patches[2 * 2 + 1], apply_affine_crops(image[1:], theta[2:3], 8)[0])
