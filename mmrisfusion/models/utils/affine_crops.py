"""Random square crops warped by a random affine, cut from a batch in one resampling.

LDFusion's patch loss (``CLIPLanguageLoss``) and its training crops (``FusionModel``) draw
the same kind of crop: a square of a given side anywhere in the image, rotated, shifted,
zoomed and sheared about its centre as torchvision's ``RandomAffine`` does, then resized.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def random_affine_crop_params(num: int, height: int, width: int, sides: Tensor,
                              degrees: float = 5.0, translate: float = 0.1,
                              scale: Tuple[float, float] = (1.0, 1.5), shear: float = 5.0,
                              generator: Optional[torch.Generator] = None) -> Tensor:
    """Sample square crops followed by a random affine, as ``affine_grid`` matrices.

    Each crop has side ``sides[k]`` (pixels) at a uniform position (allowed to stick out of
    the image when the side exceeds it; the sampler's padding mode then fills). Inside the
    crop a random affine like torchvision's ``RandomAffine(degrees, translate, scale, shear)``
    is applied about the crop centre: rotation ``U(-degrees, degrees)``, translation up to
    ``translate`` of the side in x and y, scale ``U(*scale)``, x-shear ``U(-shear, shear)``
    degrees. Crop, affine and resize to the output size are composed into one matrix, so the
    patch is resampled once (torchvision resamples twice: the published pipeline's
    interpolation differs by that second rounding, not in distribution).

    Args:
        num (int): Number of crops K.
        height (int): Source image height in pixels.
        width (int): Source image width in pixels.
        sides (Tensor): ``(K, )`` crop sides in pixels.
        degrees (float): Maximum rotation in degrees. Defaults to 5.0.
        translate (float): Maximum translation as a fraction of the side. Defaults to 0.1.
        scale (tuple[float, float]): Zoom range. Defaults to (1.0, 1.5).
        shear (float): Maximum x-shear in degrees. Defaults to 5.0.
        generator (torch.Generator, optional): Random generator (CPU). Defaults to None.

    Returns:
        Tensor: ``(K, 2, 3)`` float32 matrices mapping output coordinates to source
        coordinates (``align_corners=False`` convention).
    """
    sides = torch.as_tensor(sides, dtype=torch.float32).reshape(num)

    def uniform(low: float, high: float) -> Tensor:
        return low + (high - low) * torch.rand(num, generator=generator)

    x0 = torch.rand(num, generator=generator) * (width - sides)
    y0 = torch.rand(num, generator=generator) * (height - sides)
    angle = torch.deg2rad(uniform(-degrees, degrees))
    shear_x = torch.deg2rad(uniform(-shear, shear))
    zoom = uniform(*scale)
    # Translation in the crop's normalised coordinates (the crop spans [-1, 1]).
    shift = torch.stack([uniform(-translate, translate), uniform(-translate, translate)], 1) * 2
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear_x)
    # torchvision's rotation-with-shear matrix (no y-shear) times the zoom: forward map.
    forward = torch.stack([torch.stack([cos, -cos * tan - sin], 1),
                           torch.stack([sin, -sin * tan + cos], 1)], 1) * zoom.view(-1, 1, 1)
    inverse = torch.linalg.inv(forward)
    crop_scale = torch.stack([sides / width, sides / height], 1)  # crop -> source, linear
    crop_shift = torch.stack([(2 * x0 + sides) / width - 1, (2 * y0 + sides) / height - 1], 1)
    linear = crop_scale.unsqueeze(2) * inverse
    offset = -(linear @ shift.unsqueeze(2)).squeeze(2) + crop_shift
    return torch.cat([linear, offset.unsqueeze(2)], 2)


def apply_affine_crops(images: Tensor, theta: Tensor, size: int,
                       padding_mode: str = 'zeros') -> Tensor:
    """Cut every crop of ``theta`` out of every image: the same K crops for the whole batch.

    Args:
        images (Tensor): ``(B, C, H, W)`` images.
        theta (Tensor): ``(K, 2, 3)`` matrices from :func:`random_affine_crop_params`.
        size (int): Output side.
        padding_mode (str): ``grid_sample`` padding outside the image: 'zeros' (torchvision's
            fill 0 for the loss patches) or 'reflection' (training crops). Defaults to 'zeros'.

    Returns:
        Tensor: ``(K * B, C, size, size)``; crop ``k`` of image ``b`` is at ``k * B + b``.
    """
    num, batch = theta.shape[0], images.shape[0]
    theta = theta.to(images).repeat_interleave(batch, 0)
    grid = F.affine_grid(theta, [num * batch, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images.repeat(num, 1, 1, 1), grid, mode='bilinear',
                         padding_mode=padding_mode, align_corners=False)
