"""Square crops warped by a random affine, as torchvision's RandomCrop + RandomAffine, batched.

LDFusion draws such crops twice (docs/ldfusion.md): the training crop of each sample
(``RandomCrop(224, pad_if_needed=True, padding_mode='reflect')`` then ``RandomAffine``) and the
32 patches of the CLIP patch term (``RandomCrop(s)``, ``RandomAffine``, ``Resize(224)``), both
with ``RandomAffine(degrees=5, translate=(0, 0.1), scale=(1, 1.5), shear=5)``: nearest
interpolation, fill 0, the warp about the crop centre. Here the parameters are drawn on the
images' device and every crop of a batch is cut at once, without a host synchronisation, with
torchvision's own arithmetic (its inverse matrix, its sampling grid, ``grid_sample``): the same
parameters give the same pixels as torchvision.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

#: ``RandomAffine`` of both published LDFusion crops: degrees, translate (fractions of the
#: crop side, x then y), scale range, x-shear (degrees).
PUBLISHED_AFFINE = dict(degrees=5.0, translate=(0.0, 0.1), scale=(1.0, 1.5), shear=5.0)

SizeType = Union[int, Tensor]


@dataclass
class AffineCrops:
    """``N`` square crops of one side, each warped by its own affine about the crop centre.

    The fields are torchvision's parameters: ``RandomCrop.get_params`` (``top``, ``left``)
    and ``RandomAffine.get_params`` (``angle``, ``translate``, ``scale``, ``shear``).

    Attributes:
        side (int): Crop side in pixels, shared by all crops.
        top (Tensor): ``(N, )`` int64 top row of each crop (in the reflect-padded image when
            the image is smaller than the crop).
        left (Tensor): ``(N, )`` int64 left column of each crop.
        angle (Tensor): ``(N, )`` float64 rotation in degrees.
        translate (Tensor): ``(N, 2)`` int64 shift ``(tx, ty)`` in pixels.
        scale (Tensor): ``(N, )`` float64 zoom.
        shear (Tensor): ``(N, 2)`` float64 shear ``(x, y)`` in degrees.
    """

    side: int
    top: Tensor
    left: Tensor
    angle: Tensor
    translate: Tensor
    scale: Tensor
    shear: Tensor

    def __len__(self) -> int:
        return self.top.shape[0]

    def select(self, mask: Tensor, other: 'AffineCrops') -> 'AffineCrops':
        """These crops where ``mask`` is False, ``other``'s where it is True (same side)."""
        if other.side != self.side:
            raise ValueError(f'cannot mix crops of sides {self.side} and {other.side}')

        def pick(ours: Tensor, theirs: Tensor) -> Tensor:
            return torch.where(mask.view(-1, *[1] * (ours.dim() - 1)), theirs, ours)

        return AffineCrops(self.side, pick(self.top, other.top), pick(self.left, other.left),
                           pick(self.angle, other.angle),
                           pick(self.translate, other.translate),
                           pick(self.scale, other.scale), pick(self.shear, other.shear))


def _uniform(num: int, low: float, high: float, device: torch.device,
             generator: Optional[torch.Generator]) -> Tensor:
    """``(num, )`` float64 draws of ``U(low, high)``."""
    draw = torch.rand(num, dtype=torch.float64, device=device, generator=generator)
    return low + (high - low) * draw


def sample_affine_crops(num: int, side: int, height: SizeType, width: SizeType,
                        degrees: float = PUBLISHED_AFFINE['degrees'],
                        translate: Sequence[float] = PUBLISHED_AFFINE['translate'],
                        scale: Sequence[float] = PUBLISHED_AFFINE['scale'],
                        shear: float = PUBLISHED_AFFINE['shear'],
                        device: Union[str, torch.device] = 'cpu',
                        generator: Optional[torch.Generator] = None) -> AffineCrops:
    """Draw crops as ``RandomCrop(side, pad_if_needed=True)`` then ``RandomAffine`` would.

    Position: uniform over the integer offsets; an image side smaller than ``side`` counts as
    reflect-padded by the difference on both ends (torchvision's ``pad_if_needed``). Affine:
    angle ``U(-degrees, degrees)``, shift ``round(U(-t * side, t * side))`` pixels per axis
    for ``translate = (t_x, t_y)`` (the published ``(0, 0.1)``: no horizontal shift, up to 10%
    vertical), zoom ``U(*scale)``, x-shear ``U(-shear, shear)``, no y-shear.

    Args:
        num (int): Number of crops N.
        side (int): Crop side in pixels.
        height (int | Tensor): Image height, or ``(N, )`` heights (one image per crop).
        width (int | Tensor): Image width, or ``(N, )`` widths.
        degrees (float): Maximum rotation in degrees. Defaults to 5.0.
        translate (Sequence[float]): Maximum shift as fractions of the side, x then y.
            Defaults to (0.0, 0.1).
        scale (Sequence[float]): Zoom range. Defaults to (1.0, 1.5).
        shear (float): Maximum x-shear in degrees. Defaults to 5.0.
        device (str | torch.device): Where to draw. Defaults to 'cpu'.
        generator (torch.Generator, optional): Random generator on ``device``.
            Defaults to None.

    Returns:
        AffineCrops: The ``num`` crops.
    """
    sizes = [torch.as_tensor(s, device=device).expand(num) for s in (height, width)]
    top, left = ((_uniform(num, 0, 1, device, generator)
                  * ((size - side).abs() + 1)).floor().long() for size in sizes)
    angle = _uniform(num, -degrees, degrees, device, generator)
    shift = torch.stack([torch.round(_uniform(num, -t * side, t * side, device, generator))
                         for t in translate], 1).long()
    zoom = _uniform(num, scale[0], scale[1], device, generator)
    shear_x = _uniform(num, -shear, shear, device, generator)
    return AffineCrops(side, top, left, angle, shift, zoom,
                       torch.stack([shear_x, torch.zeros_like(shear_x)], 1))


def inverse_affine_matrices(crops: AffineCrops) -> Tensor:
    """torchvision's inverse affine matrices (output pixel -> input pixel, centred coordinates).

    The same formula as ``torchvision.transforms.functional._get_inverse_affine_matrix`` with
    the centre at the crop centre, computed in float64 and returned as float32, as torchvision
    builds them.

    Args:
        crops (AffineCrops): The crops.

    Returns:
        Tensor: ``(N, 2, 3)`` float32 matrices.
    """
    rot = torch.deg2rad(crops.angle)
    shear_x, shear_y = torch.deg2rad(crops.shear).unbind(1)
    tx, ty = crops.translate.double().unbind(1)
    # Rotation, then shear, without the zoom; its determinant is 1.
    a = torch.cos(rot - shear_y) / torch.cos(shear_y)
    b = -torch.cos(rot - shear_y) * torch.tan(shear_x) / torch.cos(shear_y) - torch.sin(rot)
    c = torch.sin(rot - shear_y) / torch.cos(shear_y)
    d = -torch.sin(rot - shear_y) * torch.tan(shear_x) / torch.cos(shear_y) + torch.cos(rot)
    m00, m01, m10, m11 = (x / crops.scale for x in (d, -b, -c, a))
    m02 = m00 * -tx + m01 * -ty
    m12 = m10 * -tx + m11 * -ty
    return torch.stack([m00, m01, m02, m10, m11, m12], 1).view(-1, 2, 3).float()


def affine_sampling_grid(crops: AffineCrops) -> Tensor:
    """``grid_sample`` grids of the crops' affines on their ``side x side`` pixels.

    torchvision's ``_gen_affine_grid``: pixel centres in centred coordinates times the
    inverse matrix, rescaled to ``[-1, 1]`` (``align_corners=False``).

    Args:
        crops (AffineCrops): The crops.

    Returns:
        Tensor: ``(N, side, side, 2)`` float32.
    """
    theta = inverse_affine_matrices(crops)
    side = crops.side
    line = torch.linspace(-side * 0.5 + 0.5, side * 0.5 - 0.5, steps=side,
                          device=theta.device)
    base = torch.stack([line.expand(side, side), line.view(-1, 1).expand(side, side),
                        torch.ones(side, side, device=theta.device)], -1)
    rescaled = theta.transpose(1, 2) / torch.tensor([0.5 * side, 0.5 * side],
                                                    device=theta.device)
    grid = base.view(1, side * side, 3).expand(len(crops), -1, -1).bmm(rescaled)
    return grid.view(-1, side, side, 2)


def _reflect(index: Tensor, size: Tensor) -> Tensor:
    """Reflect indices into ``[0, size)`` (edge not repeated, as ``F.pad(mode='reflect')``)."""
    period = (2 * (size - 1)).clamp_min(1)
    index = torch.remainder(index, period)
    return torch.where(index >= size, period - index, index)


def cut_training_crops(images: Tensor, crops: AffineCrops, boxes: Tensor) -> Tensor:
    """One crop per image: reflect-padded crop, then the affine (nearest, fill 0).

    ``torchvision.transforms.Compose([RandomCrop(side, pad_if_needed=True,
    padding_mode='reflect'), RandomAffine(...)])`` with the given parameters, for a batch
    whose images may fill only part of the batch tensor (``boxes``). Pads longer than the
    image reflect again instead of failing.

    Args:
        images (Tensor): ``(B, C, H, W)`` batch.
        crops (AffineCrops): ``B`` crops, crop ``b`` of image ``b`` (drawn for the image
            sizes in ``boxes``).
        boxes (Tensor): ``(B, 4)`` int64 ``(top, left, height, width)`` of each image in the
            batch tensor (its area without the batch padding).

    Returns:
        Tensor: ``(B, C, side, side)``.
    """
    batch, channels, _, full_width = images.shape
    side = crops.side
    box_top, box_left, heights, widths = boxes.to(images.device).unbind(1)
    steps = torch.arange(side, device=images.device)
    pad_top = (side - heights).clamp_min(0)
    pad_left = (side - widths).clamp_min(0)
    rows = box_top[:, None] + _reflect(crops.top[:, None] + steps - pad_top[:, None],
                                       heights[:, None])
    cols = box_left[:, None] + _reflect(crops.left[:, None] + steps - pad_left[:, None],
                                        widths[:, None])
    index = (rows[:, :, None] * full_width + cols[:, None, :]).view(batch, 1, -1)
    cut = images.flatten(2).gather(2, index.expand(-1, channels, -1))
    cut = cut.view(batch, channels, side, side)
    return F.grid_sample(cut, affine_sampling_grid(crops), mode='nearest',
                         padding_mode='zeros', align_corners=False)


def cut_patches(images: Tensor, crops: AffineCrops, size: int) -> Tensor:
    """The same ``K`` crops from every image, warped, then resized to ``size``.

    ``Compose([RandomCrop(side), RandomAffine(...), Resize(size)])`` with the given parameters
    (the crops lie inside the images; the resize is bilinear with antialiasing, as
    torchvision's tensor ``Resize``).

    Args:
        images (Tensor): ``(B, C, H, W)`` images.
        crops (AffineCrops): ``K`` crops.
        size (int): Output side.

    Returns:
        Tensor: ``(K * B, C, size, size)``; crop ``k`` of image ``b`` is at ``k * B + b``.
    """
    batch, channels, height, width = images.shape
    side = crops.side
    if side > min(height, width):
        raise ValueError(f'patch side {side} exceeds the image size {height} x {width}')
    steps = torch.arange(side, device=images.device)
    rows = (crops.top[:, None] + steps)[:, :, None]
    cols = (crops.left[:, None] + steps)[:, None, :]
    # (B * C, K, side, side) -> (K, B * C, side, side): one grid per crop, applied to every
    # image and channel at once.
    cut = images.reshape(batch * channels, height, width)[:, rows, cols].transpose(0, 1)
    warped = F.grid_sample(cut, affine_sampling_grid(crops), mode='nearest',
                           padding_mode='zeros', align_corners=False)
    resized = F.interpolate(warped, size=(size, size), mode='bilinear', align_corners=False,
                            antialias=True)
    return resized.reshape(len(crops) * batch, channels, size, size)


def patch_side(base: int, side_range: Tuple[float, float],
               generator: Optional[torch.Generator] = None) -> int:
    """``int(base * U(*side_range))``, drawn on the CPU (no device synchronisation).

    Args:
        base (int): The side the range scales (224, the training crop, as published).
        side_range (tuple[float, float]): Low and high fractions.
        generator (torch.Generator, optional): A CPU generator. Defaults to None.

    Returns:
        int: The side.
    """
    low, high = side_range
    return int(base * (low + (high - low) * torch.rand((), dtype=torch.float64,
                                                       generator=generator).item()))
