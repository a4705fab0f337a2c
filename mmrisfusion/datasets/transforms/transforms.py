"""Paired geometric and per-modality photometric transforms for VIS/IR/mask samples.

Every geometric transform applies the same operation to ``vis``, ``ir`` and every key in
``seg_fields``, so the three stay aligned; shapes follow mmseg's conventions (``img_shape``,
``pad_shape``, ``scale_factor``, ``flip``, ``flip_direction``) so mmseg's post-processing
and visualisation read them as usual.
"""
import re
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmrisfusion.registry import TRANSFORMS

IMAGE_KEYS = ('vis', 'ir')
RESIZE_BACKENDS = ('pillow', 'cv2')
_CV2_INTERP = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR,
               'bicubic': cv2.INTER_CUBIC, 'area': cv2.INTER_AREA}


def _image_keys(results: dict) -> list:
    return [k for k in IMAGE_KEYS if k in results]


def _all_keys(results: dict) -> list:
    return _image_keys(results) + [k for k in results.get('seg_fields', []) if k in results]


def resize_array(img: np.ndarray, size: Tuple[int, int], interpolation: str,
                 backend: str) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) uint8 array to ``size`` = (w, h), keeping its rank.

    Args:
        img (np.ndarray): The array.
        size (tuple[int, int]): Target (width, height).
        interpolation (str): 'nearest', 'bilinear', 'bicubic' (or 'area' with cv2).
        backend (str): 'pillow' (antialiased downscaling, as torchvision/PIL in the published
            code) or 'cv2' (faster; no antialiasing).

    Returns:
        np.ndarray: The resized array.
    """
    single = img.ndim == 3 and img.shape[2] == 1
    src = img[..., 0] if single else img
    if backend == 'pillow':
        from PIL import Image
        out = np.array(Image.fromarray(src).resize(
            size, getattr(Image.Resampling, interpolation.upper())))
    else:
        out = cv2.resize(src, size, interpolation=_CV2_INTERP[interpolation])
    return out[..., None] if single else out


def _check_backend(backend: str, interpolation: str) -> None:
    if backend not in RESIZE_BACKENDS:
        raise ValueError(f'backend must be one of {RESIZE_BACKENDS}, got {backend!r}')
    allowed = ('nearest', 'bilinear', 'bicubic') + (('area',) if backend == 'cv2' else ())
    if interpolation not in allowed:
        raise ValueError(f'interpolation must be one of {allowed} with backend {backend!r}, '
                         f'got {interpolation!r}')


def _resize_all(results: dict, size: Tuple[int, int], interpolation: str,
                backend: str) -> None:
    """Resize images with ``interpolation`` and seg maps with nearest to (w, h)."""
    h, w = results['img_shape'][:2]
    for key in _image_keys(results):
        results[key] = resize_array(results[key], size, interpolation, backend)
    for key in results.get('seg_fields', []):
        results[key] = resize_array(results[key], size, 'nearest', backend)
    old = results.get('scale_factor', (1.0, 1.0))
    results['scale_factor'] = (old[0] * size[0] / w, old[1] * size[1] / h)
    results['img_shape'] = (size[1], size[0])
    results['pad_shape'] = (size[1], size[0])


def _fit_size(shape: Tuple[int, int], scale: Tuple[int, int]) -> Tuple[int, int]:
    """The (w, h) of ``shape`` = (h, w) scaled to fit inside ``scale`` = (w, h)."""
    h, w = shape
    factor = min(scale[0] / w, scale[1] / h)
    return max(1, int(round(w * factor))), max(1, int(round(h * factor)))


@TRANSFORMS.register_module()
class RISResize(BaseTransform):
    """Resize VIS, IR (``interpolation``) and seg maps (nearest) together.

    The published MM-RIS preprocessing is ``RISResize(scale=(480, 480))``: a fixed size that
    ignores the aspect ratio, bilinear with Pillow for the images and nearest for the mask.
    ``keep_ratio=True`` instead scales the image to fit inside ``scale``.

    Required keys: ``img_shape``, ``vis`` and/or ``ir``, ``seg_fields``.

    Modified keys: ``vis``, ``ir``, every key in ``seg_fields``, ``img_shape``,
    ``pad_shape``.

    Added keys: ``scale_factor`` (w_scale, h_scale), ``keep_ratio``.

    Args:
        scale (tuple[int, int]): Target (width, height). Defaults to (480, 480).
        keep_ratio (bool): Fit inside ``scale`` keeping the aspect ratio. Defaults to False.
        interpolation (str): Image interpolation. Defaults to 'bilinear'.
        backend (str): 'pillow' (as published) or 'cv2' (faster, not antialiased).
            Defaults to 'pillow'.
    """

    def __init__(self,
                 scale: Tuple[int, int] = (480, 480),
                 keep_ratio: bool = False,
                 interpolation: str = 'bilinear',
                 backend: str = 'pillow') -> None:
        _check_backend(backend, interpolation)
        self.scale = tuple(int(s) for s in scale)
        self.keep_ratio = keep_ratio
        self.interpolation = interpolation
        self.backend = backend

    def transform(self, results: dict) -> dict:
        """Resize the sample.

        Args:
            results (dict): The sample.

        Returns:
            dict: The resized sample.
        """
        size = (_fit_size(results['img_shape'][:2], self.scale) if self.keep_ratio
                else self.scale)
        _resize_all(results, size, self.interpolation, self.backend)
        results['keep_ratio'] = self.keep_ratio
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, keep_ratio={self.keep_ratio}, '
                f'interpolation={self.interpolation!r}, backend={self.backend!r})')


@TRANSFORMS.register_module()
class RISResizePad(BaseTransform):
    """Resize keeping the aspect ratio to fit ``scale``, then pad bottom/right to ``scale``.

    The padding is recorded in ``padding_size`` (left, right, top, bottom), which mmseg's
    ``postprocess_result`` removes before resizing predictions back to ``ori_shape``;
    ``RISDataPreProcessor`` adds its own batch padding to it.

    Required keys: ``img_shape``, ``vis`` and/or ``ir``, ``seg_fields``.

    Modified keys: ``vis``, ``ir``, every key in ``seg_fields``, ``img_shape`` (the resized
    size before padding), ``pad_shape`` (= ``scale``).

    Added keys: ``scale_factor``, ``keep_ratio``, ``padding_size``.

    Args:
        scale (tuple[int, int]): Output (width, height). Defaults to (480, 480).
        pad_val (int): Image padding value. Defaults to 0.
        seg_pad_val (int): Seg map padding value (ignored by losses and metrics).
            Defaults to 255.
        interpolation (str): Image interpolation. Defaults to 'bilinear'.
        backend (str): 'pillow' or 'cv2'. Defaults to 'pillow'.
    """

    def __init__(self,
                 scale: Tuple[int, int] = (480, 480),
                 pad_val: int = 0,
                 seg_pad_val: int = 255,
                 interpolation: str = 'bilinear',
                 backend: str = 'pillow') -> None:
        _check_backend(backend, interpolation)
        self.scale = tuple(int(s) for s in scale)
        self.pad_val = pad_val
        self.seg_pad_val = seg_pad_val
        self.interpolation = interpolation
        self.backend = backend

    def transform(self, results: dict) -> dict:
        """Resize and pad the sample.

        Args:
            results (dict): The sample.

        Returns:
            dict: The resized and padded sample.
        """
        size = _fit_size(results['img_shape'][:2], self.scale)
        _resize_all(results, size, self.interpolation, self.backend)
        pad_w, pad_h = self.scale[0] - size[0], self.scale[1] - size[1]
        for key in _all_keys(results):
            value = self.seg_pad_val if key in results.get('seg_fields', []) else self.pad_val
            widths = ((0, pad_h), (0, pad_w)) + ((0, 0),) * (results[key].ndim - 2)
            results[key] = np.pad(results[key], widths, constant_values=value)
        old = results.get('padding_size', (0, 0, 0, 0))
        results['padding_size'] = (old[0], old[1] + pad_w, old[2], old[3] + pad_h)
        results['pad_shape'] = (self.scale[1], self.scale[0])
        results['keep_ratio'] = True
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, pad_val={self.pad_val}, '
                f'seg_pad_val={self.seg_pad_val}, backend={self.backend!r})')


@TRANSFORMS.register_module()
class RISRandomCrop(BaseTransform):
    """Crop VIS, IR and seg maps at the same random window.

    A crop can cut the referred object out, which would teach the model that the expression
    refers to nothing; ``min_target_fraction`` redraws the window (up to ``max_tries``
    times, then keeps the best one) until that share of the target's pixels stays inside.
    Note that crops may change which object is "leftmost"; use them with care for
    expressions with absolute positions.

    Required keys: ``img_shape``, ``vis`` and/or ``ir``, ``seg_fields``; ``gt_seg_map`` for
    the target constraint.

    Modified keys: ``vis``, ``ir``, every key in ``seg_fields``, ``img_shape``,
    ``pad_shape``.

    Added keys: ``crop_bbox`` (x1, y1, x2, y2).

    Args:
        crop_size (tuple[int, int]): (height, width), as in mmseg; images smaller than it
            are cropped to their own size along that side. Defaults to (384, 384).
        min_target_fraction (float): Share of the target's pixels the crop must keep.
            Defaults to 0.5.
        max_tries (int): Windows drawn before keeping the best. Defaults to 10.
    """

    def __init__(self,
                 crop_size: Tuple[int, int] = (384, 384),
                 min_target_fraction: float = 0.5,
                 max_tries: int = 10) -> None:
        if len(crop_size) != 2 or min(crop_size) < 1:
            raise ValueError(f'crop_size must be (height, width) > 0, got {crop_size}')
        self.crop_size = tuple(int(s) for s in crop_size)
        self.min_target_fraction = min_target_fraction
        self.max_tries = max_tries

    @cache_randomness
    def _windows(self, h: int, w: int) -> np.ndarray:
        """``max_tries`` random top-left corners (y, x)."""
        ch, cw = min(self.crop_size[0], h), min(self.crop_size[1], w)
        ys = np.random.randint(0, h - ch + 1, self.max_tries)
        xs = np.random.randint(0, w - cw + 1, self.max_tries)
        return np.stack([ys, xs], 1)

    def transform(self, results: dict) -> dict:
        """Crop the sample.

        Args:
            results (dict): The sample.

        Returns:
            dict: The cropped sample.
        """
        h, w = results['img_shape'][:2]
        ch, cw = min(self.crop_size[0], h), min(self.crop_size[1], w)
        corners = self._windows(h, w)
        mask = results.get('gt_seg_map')
        best, best_keep = corners[0], -1.0
        if mask is not None and self.min_target_fraction > 0:
            target = mask == 1
            total = max(int(target.sum()), 1)
            for y, x in corners:
                keep = target[y:y + ch, x:x + cw].sum() / total
                if keep > best_keep:
                    best, best_keep = (y, x), keep
                if keep >= self.min_target_fraction:
                    break
        y, x = int(best[0]), int(best[1])
        for key in _all_keys(results):
            results[key] = np.ascontiguousarray(results[key][y:y + ch, x:x + cw])
        results['img_shape'] = (ch, cw)
        results['pad_shape'] = (ch, cw)
        results['crop_bbox'] = (x, y, x + cw, y + ch)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(crop_size={self.crop_size}, '
                f'min_target_fraction={self.min_target_fraction})')


# Words that name a direction, swapped when the image is flipped so the label stays true.
DIRECTION_WORDS = {
    'horizontal': [('left', 'right'), ('leftmost', 'rightmost'), ('leftward', 'rightward'),
                   ('leftwards', 'rightwards'), ('lefthand', 'righthand')],
    'vertical': [('top', 'bottom'), ('topmost', 'bottommost'), ('upper', 'lower'),
                 ('uppermost', 'lowermost'), ('above', 'below')],
}


def swap_direction_words(text: str, direction: str) -> str:
    """Swap the direction words of ``text`` for a flip in ``direction``.

    Whole words only ("left" but not "leftover"; "left-hand" becomes "right-hand"), with
    the case of each word kept (lower, Capitalised or UPPER).

    Args:
        text (str): The expression.
        direction (str): 'horizontal' or 'vertical'.

    Returns:
        str: The expression for the flipped image.
    """
    mapping: Dict[str, str] = {}
    for a, b in DIRECTION_WORDS[direction]:
        mapping[a], mapping[b] = b, a
    pattern = re.compile(r'\b(' + '|'.join(sorted(mapping, key=len, reverse=True)) + r')\b',
                         re.IGNORECASE)

    def replace(match: 're.Match') -> str:
        word = match.group(0)
        new = mapping[word.lower()]
        if word.isupper() and len(word) > 1:
            return new.upper()
        return new.capitalize() if word[0].isupper() else new

    return pattern.sub(replace, text)


@TRANSFORMS.register_module()
class RISRandomFlip(BaseTransform):
    """Flip VIS, IR and seg maps together, and swap the direction words of the expression.

    After a horizontal flip "the person on the left" refers to the person now on the right,
    so "left"/"right" (and "leftmost"/"rightmost", ...) are swapped to keep the label true;
    a vertical flip swaps "top"/"bottom", "upper"/"lower", "above"/"below". It must run
    before ``TokenizeText``: tokens of the unswapped text would contradict the flipped image.

    Required keys: ``vis`` and/or ``ir``, ``seg_fields``; ``text`` (optional).

    Modified keys: ``vis``, ``ir``, every key in ``seg_fields``, ``text`` (when flipped
    and ``swap_words``), ``padding_size`` (its sides swap when padding came first).

    Added keys: ``flip``, ``flip_direction``.

    Args:
        prob (float): Probability of flipping. Defaults to 0.5.
        direction (str): 'horizontal' or 'vertical'. Defaults to 'horizontal'.
        swap_words (bool): Swap direction words in ``text``. Defaults to True.
    """

    def __init__(self,
                 prob: float = 0.5,
                 direction: str = 'horizontal',
                 swap_words: bool = True) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        if direction not in DIRECTION_WORDS:
            raise ValueError(f'direction must be one of {list(DIRECTION_WORDS)}, '
                             f'got {direction!r}')
        self.prob = prob
        self.direction = direction
        self.swap_words = swap_words

    @cache_randomness
    def _do_flip(self) -> bool:
        return bool(np.random.rand() < self.prob)

    def transform(self, results: dict) -> dict:
        """Maybe flip the sample.

        Args:
            results (dict): The sample.

        Returns:
            dict: The (maybe) flipped sample.
        """
        if self.swap_words and 'token_ids' in results:
            raise ValueError(f'{results.get("source", "")}: RISRandomFlip found token_ids; put '
                             'it before TokenizeText in the pipeline, so the tokens match '
                             'the flipped expression')
        flip = self._do_flip()
        results['flip'] = flip
        results['flip_direction'] = self.direction if flip else None
        if not flip:
            return results
        axis = 1 if self.direction == 'horizontal' else 0
        for key in _all_keys(results):
            results[key] = np.ascontiguousarray(np.flip(results[key], axis))
        if 'padding_size' in results:  # padding added before the flip changes sides
            left, right, top, bottom = results['padding_size']
            results['padding_size'] = ((right, left, top, bottom) if axis == 1 else
                                       (left, right, bottom, top))
        if self.swap_words and isinstance(results.get('text'), str):
            results['text'] = swap_direction_words(results['text'], self.direction)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, direction={self.direction!r}, '
                f'swap_words={self.swap_words})')


@TRANSFORMS.register_module()
class RISPhotoMetricDistortion(BaseTransform):
    """Photometric augmentation with independent random parameters per modality.

    Brightness and contrast apply to every listed modality, each with its own draw;
    saturation and hue only to VIS (IR has no colour). Each operation happens with
    probability 0.5, as in mmseg's ``PhotoMetricDistortion``. The published recipe uses no
    augmentation, so the shipped configs leave it out.

    Required keys: the modalities listed in ``modalities``.

    Modified keys: the same.

    Args:
        brightness_delta (int): Maximum brightness shift. Defaults to 32.
        contrast_range (tuple[float, float]): Contrast factor range. Defaults to (0.5, 1.5).
        saturation_range (tuple[float, float]): VIS saturation factor range.
            Defaults to (0.5, 1.5).
        hue_delta (int): Maximum VIS hue shift (OpenCV hue units, 0..179). Defaults to 18.
        modalities (Sequence[str]): Which of 'vis', 'ir' to distort.
            Defaults to ('vis', 'ir').
    """

    def __init__(self,
                 brightness_delta: int = 32,
                 contrast_range: Tuple[float, float] = (0.5, 1.5),
                 saturation_range: Tuple[float, float] = (0.5, 1.5),
                 hue_delta: int = 18,
                 modalities: Sequence[str] = ('vis', 'ir')) -> None:
        unknown = set(modalities) - set(IMAGE_KEYS)
        if unknown:
            raise ValueError(f'modalities must be among {IMAGE_KEYS}, got {sorted(unknown)}')
        self.brightness_delta = brightness_delta
        self.contrast_range = tuple(contrast_range)
        self.saturation_range = tuple(saturation_range)
        self.hue_delta = hue_delta
        self.modalities = tuple(modalities)

    @cache_randomness
    def _params(self, colour: bool) -> Dict[str, Optional[Union[float, bool]]]:
        """One modality's random draw; None means the operation is skipped."""
        def maybe(low: float, high: float) -> Optional[float]:
            return float(np.random.uniform(low, high)) if np.random.rand() < 0.5 else None
        return dict(
            brightness=maybe(-self.brightness_delta, self.brightness_delta),
            contrast=maybe(*self.contrast_range),
            contrast_first=bool(np.random.rand() < 0.5),
            saturation=maybe(*self.saturation_range) if colour else None,
            hue=maybe(-self.hue_delta, self.hue_delta) if colour else None)

    def _distort(self, img: np.ndarray, p: dict) -> np.ndarray:
        out = img.astype(np.float32)
        if p['brightness'] is not None:
            out += p['brightness']
        if p['contrast'] is not None and p['contrast_first']:
            out *= p['contrast']
        if p['saturation'] is not None or p['hue'] is not None:
            hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
            hsv = hsv.astype(np.float32)
            if p['saturation'] is not None:
                hsv[..., 1] = np.clip(hsv[..., 1] * p['saturation'], 0, 255)
            if p['hue'] is not None:
                hsv[..., 0] = (hsv[..., 0] + p['hue']) % 180
            out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
        if p['contrast'] is not None and not p['contrast_first']:
            out *= p['contrast']
        return np.clip(out, 0, 255).astype(np.uint8).reshape(img.shape)

    def transform(self, results: dict) -> dict:
        """Distort each listed modality with its own random parameters.

        Args:
            results (dict): The sample.

        Returns:
            dict: The distorted sample.
        """
        for key in self.modalities:
            if key in results:
                colour = key == 'vis' and results[key].ndim == 3 and results[key].shape[2] == 3
                results[key] = self._distort(results[key], self._params(colour))
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness_delta={self.brightness_delta}, '
                f'contrast_range={self.contrast_range}, saturation_range='
                f'{self.saturation_range}, hue_delta={self.hue_delta}, '
                f'modalities={self.modalities})')
