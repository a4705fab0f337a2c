"""Drawing helpers shared by the visualiser, ``tools/test.py`` and the demo.

Plain numpy/OpenCV functions on RGB ``uint8`` arrays, so every place that writes a picture
of a result (panels during validation, overlays on disk, the demo) draws it the same way.
"""
import textwrap
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

PRED_COLOR = (255, 0, 0)
GT_COLOR = (0, 255, 0)
#: Lines of caption under a panel; a longer expression is cut with ' ...' (a 5000-character
#: one would otherwise make a panel 1500 pixels tall).
MAX_CAPTION_LINES = 3


def to_uint8_image(image: ArrayLike) -> np.ndarray:
    """Convert an image of the pipeline or of a user to ``(H, W, 3)`` uint8 RGB.

    The layout follows the type, never the shape: a tensor is ``(C, H, W)`` (mmengine's
    ``PixelData``, ``PackRISInputs``), an array ``(H, W, C)`` (numpy, OpenCV, Pillow), both
    with C in {1, 3}, or ``(H, W)``. (Guessing the channel axis from the shape misreads
    images 1 or 3 pixels wide.) Float data is read as [0, 1] (the fused image of a data
    sample), integer data as 0..255. One channel is replicated to three, so gray IR can sit
    next to RGB images.

    Args:
        image (np.ndarray | torch.Tensor): The image.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB.
    """
    channels_first = isinstance(image, torch.Tensor)
    if channels_first:
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    elif image.ndim == 3 and channels_first:
        image = image.transpose(1, 2, 0)
    if image.ndim != 3:
        raise ValueError(f'expected an image of 2 or 3 dimensions, got shape {image.shape}')
    if image.shape[-1] not in (1, 3):
        layout = '(C, H, W) tensor' if channels_first else '(H, W, C) array'
        raise ValueError(f'expected 1 or 3 channels, got a {layout} of {image.shape[-1]} '
                         'channels')
    if np.issubdtype(image.dtype, np.floating):
        image = np.clip(np.rint(image * 255.0), 0, 255)
    elif image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    image = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image


def to_binary_mask(mask: ArrayLike) -> np.ndarray:
    """Convert a label map (``(H, W)`` or ``(1, H, W)``) to a ``(H, W)`` bool mask.

    Foreground is every label > 0, the convention of MM-RIS masks and of the 2-class
    predictions (class 1 = the referred object).

    Args:
        mask (np.ndarray | torch.Tensor): The label map.

    Returns:
        np.ndarray: ``(H, W)`` bool.
    """
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise ValueError(f'expected a mask of shape (H, W) or (1, H, W), got {mask.shape}')
    return mask > 0


def resize_to(image: np.ndarray, size: Tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize an image or mask to ``size`` = (H, W) when it differs.

    Predictions are at the original size and pipeline inputs at the network size; drawings
    bring them to one size.

    Args:
        image (np.ndarray): ``(H, W)`` or ``(H, W, C)`` array (bool masks allowed).
        size (tuple[int, int]): Target (H, W).
        nearest (bool): Nearest-neighbour interpolation (masks) instead of bilinear.
            Defaults to False.

    Returns:
        np.ndarray: The resized array, of the input dtype.
    """
    if tuple(image.shape[:2]) == tuple(size):
        return image
    is_bool = image.dtype == np.bool_
    src = image.astype(np.uint8) if is_bool else image
    interp = cv2.INTER_NEAREST if nearest or is_bool else cv2.INTER_LINEAR
    out = cv2.resize(src, (int(size[1]), int(size[0])), interpolation=interp)
    if src.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out.astype(bool) if is_bool else out


def overlay_mask(image: ArrayLike, mask: ArrayLike,
                 color: Tuple[int, int, int] = PRED_COLOR,
                 alpha: float = 0.5, contour: bool = True) -> np.ndarray:
    """Blend a binary mask onto an image in one colour, with an optional outline.

    Args:
        image (np.ndarray | torch.Tensor): The image (any layout of :func:`to_uint8_image`).
        mask (np.ndarray | torch.Tensor): The mask (any layout of :func:`to_binary_mask`);
            resized (nearest) to the image when the sizes differ.
        color (tuple[int, int, int]): RGB colour of the mask. Defaults to (255, 0, 0) (red).
        alpha (float): Opacity of the colour inside the mask. Defaults to 0.5.
        contour (bool): Whether to draw the mask's outline at full opacity, so thin
            objects stay visible. Defaults to True.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    canvas = to_uint8_image(image)
    binary = resize_to(to_binary_mask(mask), canvas.shape[:2], nearest=True)
    out = canvas.astype(np.float32)
    tint = np.asarray(color, dtype=np.float32)
    out[binary] = (1.0 - alpha) * out[binary] + alpha * tint
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if contour and binary.any():
        contours, _ = cv2.findContours(binary.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), 1)
    return out


def _put_lines(canvas: np.ndarray, lines: Sequence[str], top: int, scale: float,
               line_height: int) -> None:
    """Write ``lines`` of text onto ``canvas`` (in place), white, left-aligned."""
    for k, line in enumerate(lines):
        y = top + (k + 1) * line_height - line_height // 4
        cv2.putText(canvas, line, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    1, cv2.LINE_AA)


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only; other characters become '?'."""
    return text.encode('ascii', errors='replace').decode('ascii')


def make_panel(tiles: Sequence[Tuple[str, ArrayLike]], caption: Optional[str] = None,
               tile_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Lay titled images side by side with a wrapped caption underneath.

    Args:
        tiles (Sequence[tuple[str, np.ndarray | torch.Tensor]]): (title, image) pairs, drawn
            left to right.
        caption (str, optional): Text under the row, e.g. the referring expression; wrapped
            to the panel width, at most :data:`MAX_CAPTION_LINES` lines. Defaults to None.
        tile_size (tuple[int, int], optional): (H, W) every tile is resized to. Defaults to
            None (the first tile's size).

    Returns:
        np.ndarray: ``(H', W', 3)`` uint8 RGB panel.
    """
    if not tiles:
        raise ValueError('make_panel needs at least one (title, image) tile')
    images = [to_uint8_image(image) for _, image in tiles]
    height, width = tile_size if tile_size is not None else images[0].shape[:2]
    scale = max(0.35, min(1.0, width / 256.0))
    line_height = int(round(22 * scale)) + 4
    gap = 2
    row = np.zeros((height + line_height, len(images) * (width + gap) - gap, 3), np.uint8)
    for k, ((title, _), image) in enumerate(zip(tiles, images)):
        x = k * (width + gap)
        row[line_height:, x:x + width] = resize_to(image, (height, width))
        title_strip = row[:line_height, x:x + width]
        _put_lines(title_strip, [_ascii(title)], 0, scale, line_height)
    if not caption:
        return row
    char_width = max(1, int(cv2.getTextSize('x', cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]))
    lines = textwrap.wrap(_ascii(caption), width=max(8, row.shape[1] // char_width - 1),
                          max_lines=MAX_CAPTION_LINES, placeholder=' ...')
    strip = np.zeros((len(lines) * line_height + 4, row.shape[1], 3), np.uint8)
    _put_lines(strip, lines, 0, scale, line_height)
    return np.concatenate([row, strip], axis=0)


def draw_ris_panel(vis: ArrayLike, ir: ArrayLike, fused: Optional[ArrayLike] = None,
                   pred_mask: Optional[ArrayLike] = None, gt_mask: Optional[ArrayLike] = None,
                   text: Optional[str] = None) -> np.ndarray:
    """The standard picture of one sample: VIS, IR, fused, prediction, GT, and the expression.

    The prediction (red) and the ground truth (green) are drawn on the fused image when there
    is one (what the RIS network saw), else on VIS. Missing parts are left out, so the same
    call draws fusion-only samples (no masks, no text).

    Args:
        vis (np.ndarray | torch.Tensor): The visible image.
        ir (np.ndarray | torch.Tensor): The infrared image.
        fused (np.ndarray | torch.Tensor, optional): The fused image. Defaults to None.
        pred_mask (np.ndarray | torch.Tensor, optional): Predicted label map. Defaults to
            None.
        gt_mask (np.ndarray | torch.Tensor, optional): Ground-truth label map. Defaults to
            None.
        text (str, optional): The referring expression, written as the caption. Defaults to
            None.

    Returns:
        np.ndarray: ``(H', W', 3)`` uint8 RGB panel; tiles take VIS's size.
    """
    vis_img = to_uint8_image(vis)
    size = vis_img.shape[:2]
    tiles = [('VIS', vis_img), ('IR', resize_to(to_uint8_image(ir), size))]
    base = vis_img
    if fused is not None:
        base = resize_to(to_uint8_image(fused), size)
        tiles.append(('fused', base))
    if pred_mask is not None:
        tiles.append(('prediction', overlay_mask(base, pred_mask, PRED_COLOR)))
    if gt_mask is not None:
        tiles.append(('GT', overlay_mask(base, gt_mask, GT_COLOR)))
    return make_panel(tiles, caption=text, tile_size=size)
