"""Decode the VIS/IR pair and the referred object's mask, from bytes or paths.

Nothing is decoded before its size is known: an image header (or a ``.npy`` header) of a
few bytes can declare gigapixels, which would cost gigabytes in every dataloader worker
before any check on the decoded array could run. Images above ``max_pixels`` are refused
with the row named, like any other invalid row (skippable with ``skip_invalid=True``).
"""
import io
import warnings
from typing import Optional, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio

from mmrisfusion.registry import TRANSFORMS

from ..base_ris_dataset import InvalidSampleError, warn_suspicious

DECODE_BACKENDS = ('pillow', 'cv2')
#: Images and masks of more pixels are refused before decoding (``max_pixels`` of the loading
#: transforms): Pillow's own warning threshold (``PIL.Image.MAX_IMAGE_PIXELS``), 9459x9459,
#: about 270 MB as RGB, far above the datasets' images.
MAX_PIXELS = 89_478_485
#: Mask values with a meaning: background 0, foreground 1 (MM-RIS .npy) or 255 (PNG masks).
MASK_VALUES = (0, 1, 255)


def _where(results: dict) -> tuple:
    """(source, image name) of a results dict, for error messages."""
    return results.get('source', '<unknown source>'), results.get('img_name')


def _read_bytes(results: dict, modality: str, backend_args: Optional[dict]) -> bytes:
    """The encoded bytes of ``modality`` ('vis', 'ir', 'seg') from bytes or a path."""
    data = results.get(f'{modality}_bytes')
    if data is not None:
        return data
    path_key = 'seg_map_path' if modality == 'seg' else f'{modality}_path'
    if path_key not in results:
        raise KeyError(f'{_where(results)[0]}: the results hold neither {modality}_bytes nor '
                       f'{path_key}; the dataset must provide one of them')
    return fileio.get(results[path_key], backend_args=backend_args)


def image_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) of encoded image bytes, read from the header: no pixel is decoded.

    Args:
        data (bytes): Encoded image (PNG, JPEG, BMP, TIFF, WebP, ...).

    Returns:
        tuple[int, int] | None: The size, or None when Pillow does not know the format.

    Raises:
        ValueError: When the header declares more pixels than Pillow itself opens.
    """
    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except Image.DecompressionBombError as error:
        raise ValueError(f'{error} (Pillow read the header only; nothing was decoded)') \
            from error
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def check_pixels(data: bytes, max_pixels: int) -> None:
    """Refuse encoded image bytes whose header declares more than ``max_pixels`` pixels.

    Formats Pillow cannot read the header of pass (OpenCV refuses more than 2**30 pixels).

    Raises:
        ValueError: Naming the size and the limit.
    """
    size = image_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ValueError(f'the image is {size[0]}x{size[1]} = {size[0] * size[1]} pixels, '
                         f'above max_pixels={max_pixels}; nothing was decoded (raise '
                         'max_pixels of the loading transform if such images are expected)')


def decode_image(data: bytes, gray: bool, backend: str = 'pillow',
                 max_pixels: int = MAX_PIXELS) -> Optional[np.ndarray]:
    """Decode PNG/JPEG/... bytes to RGB (H, W, 3) or gray (H, W) uint8; None if undecodable.

    Args:
        data (bytes): Encoded image.
        gray (bool): Decode to one luma channel (ITU-R 601 weights) instead of RGB.
        backend (str): 'pillow' (what the published code uses) or 'cv2'. Both ignore EXIF
            orientation, as the published loader does. Defaults to 'pillow'.
        max_pixels (int): Refuse larger images before decoding them. Defaults to
            :data:`MAX_PIXELS`.

    Returns:
        np.ndarray | None: The image, or None when the bytes are not a readable image.

    Raises:
        ValueError: When the image has more than ``max_pixels`` pixels.
    """
    check_pixels(data, max_pixels)
    if backend == 'pillow':
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(io.BytesIO(data)) as img:
                return np.array(img.convert('L' if gray else 'RGB'))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            return None
    flags = (cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        return None
    return img if gray else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_npy_mask(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read the ``.npy`` bytes of a mask, its header checked before any allocation.

    Args:
        data (bytes): The bytes of a ``.npy`` file.
        max_pixels (int): Refuse arrays of more elements. Defaults to :data:`MAX_PIXELS`.

    Returns:
        np.ndarray: The array (never unpickled).

    Raises:
        ValueError: For bytes that are not a ``.npy`` file, an object array, a header that
            declares more elements than ``max_pixels`` or more bytes than the data holds.
    """
    buf = io.BytesIO(data)
    version = np.lib.format.read_magic(buf)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f'.npy format version {version} (expected 1.0 or 2.0)')
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, _, dtype = read_header(buf)
    if dtype.hasobject:
        raise ValueError('an object array (it would need unpickling)')
    count = int(np.prod(shape, dtype=object))
    if count > max_pixels:
        raise ValueError(f'the header declares shape {shape}: {count} elements, above '
                         f'max_pixels={max_pixels}')
    stored = len(data) - buf.tell()
    if count * dtype.itemsize > stored:
        raise ValueError(f'the header declares shape {shape} of {dtype} ({count * dtype.itemsize} '
                         f'bytes) but the data holds {stored} bytes')
    return np.load(io.BytesIO(data), allow_pickle=False)


def unexpected_mask_values(mask: np.ndarray) -> Optional[str]:
    """The values of a mask outside :data:`MASK_VALUES` (NaN included), as text; or None.

    Foreground is every value > 0 as published, so a mask of 0/1 or 0/255 means what it
    says; other values (2, -1, 0.5, NaN) are read as foreground or background all the same
    and most likely mean the file is not the binary mask it should be.
    """
    values = np.unique(mask)
    odd = [v for v in values.tolist() if v not in MASK_VALUES]  # NaN != anything
    if not odd:
        return None
    shown = ', '.join(repr(v) for v in odd[:5]) + (', ...' if len(odd) > 5 else '')
    return f'the mask holds values {shown}; expected {"/".join(map(str, MASK_VALUES))}'


@TRANSFORMS.register_module()
class LoadRISImages(BaseTransform):
    """Decode the visible and infrared images of a sample.

    Published MM-RIS decodes both images to RGB (the IR content is gray, stored in three
    equal channels), which ``ir_channels=3`` reproduces; ``ir_channels=1`` keeps IR as one
    luma channel for models that read it so.

    Required keys: ``vis_bytes`` or ``vis_path``, ``ir_bytes`` or ``ir_path``; ``source``
    and ``img_name`` for error messages.

    Added keys: ``vis`` (H, W, 3 uint8 RGB), ``ir`` (H, W, 3 or H, W, 1 uint8),
    ``ori_shape``, ``img_shape``, ``pad_shape`` (all (H, W)), ``seg_fields`` (empty list
    if absent).

    Modified keys: ``vis_bytes`` and ``ir_bytes`` are dropped once decoded.

    Args:
        ir_channels (int): 3 (RGB, as published) or 1 (gray). Defaults to 3.
        decode_backend (str): 'pillow' (as published) or 'cv2'. Defaults to 'pillow'.
        max_pixels (int): Images with more pixels are invalid rows, refused from their
            header before decoding. Defaults to :data:`MAX_PIXELS` (89.5 megapixels).
        backend_args (dict, optional): mmengine file backend arguments for paths.
            Defaults to None.
    """

    def __init__(self,
                 ir_channels: int = 3,
                 decode_backend: str = 'pillow',
                 max_pixels: int = MAX_PIXELS,
                 backend_args: Optional[dict] = None) -> None:
        if ir_channels not in (1, 3):
            raise ValueError(f'ir_channels must be 1 or 3, got {ir_channels}')
        if decode_backend not in DECODE_BACKENDS:
            raise ValueError(f'decode_backend must be one of {DECODE_BACKENDS}, '
                             f'got {decode_backend!r}')
        self.ir_channels = ir_channels
        self.decode_backend = decode_backend
        self.max_pixels = max_pixels
        self.backend_args = backend_args

    def _decode(self, results: dict, modality: str, gray: bool) -> np.ndarray:
        column = 'visible_image' if modality == 'vis' else 'infrared_image'
        try:
            img = decode_image(_read_bytes(results, modality, self.backend_args), gray,
                               self.decode_backend, self.max_pixels)
        except ValueError as error:
            raise InvalidSampleError(*_where(results), f'{column}: {error}') from error
        if img is None:
            raise InvalidSampleError(*_where(results), f'{column} is not a decodable image; '
                                     'expected PNG/JPEG bytes')
        return img

    def transform(self, results: dict) -> dict:
        """Decode ``vis`` and ``ir`` and check that they have the same size.

        Args:
            results (dict): The sample.

        Returns:
            dict: The sample with the decoded images.
        """
        vis = self._decode(results, 'vis', gray=False)
        ir = self._decode(results, 'ir', gray=self.ir_channels == 1)
        if ir.ndim == 2:
            ir = ir[..., None]
        if vis.shape[:2] != ir.shape[:2]:
            raise InvalidSampleError(*_where(results), f'VIS is {vis.shape[1]}x{vis.shape[0]} '
                                     f'but IR is {ir.shape[1]}x{ir.shape[0]} (WxH); expected '
                                     'a registered pair of the same size')
        results.pop('vis_bytes', None)
        results.pop('ir_bytes', None)
        results['vis'] = vis
        results['ir'] = ir
        results['ori_shape'] = vis.shape[:2]
        results['img_shape'] = vis.shape[:2]
        results['pad_shape'] = vis.shape[:2]
        results.setdefault('seg_fields', [])
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(ir_channels={self.ir_channels}, '
                f'decode_backend={self.decode_backend!r}, max_pixels={self.max_pixels})')


@TRANSFORMS.register_module()
class LoadRISAnnotation(BaseTransform):
    """Load the referred object's mask as a binary map (1 = referred object).

    From ``seg_bytes`` (MM-RIS: the bytes of a ``.npy`` HxW array, read with
    ``allow_pickle=False``) or ``seg_map_path`` (an image, e.g. PNG, read unchanged).
    Foreground is every value > 0, as in the published loader. A mask with values other
    than 0, 1 and 255 (NaN, -1, 7, ...) is used that way too, with a warning (the first of
    each process, see :func:`~mmrisfusion.datasets.warn_suspicious`).

    Required keys: ``seg_bytes`` or ``seg_map_path``; ``img_shape`` when the images are
    loaded first (the mask must match their size).

    Added keys: ``gt_seg_map`` (H, W uint8 in {0, 1}), appended to ``seg_fields``.

    Modified keys: ``seg_bytes`` is dropped once decoded.

    Args:
        max_pixels (int): Masks with more pixels are invalid rows, refused from their
            header before decoding. Defaults to :data:`MAX_PIXELS`.
        backend_args (dict, optional): mmengine file backend arguments for paths.
            Defaults to None.
    """

    def __init__(self, max_pixels: int = MAX_PIXELS,
                 backend_args: Optional[dict] = None) -> None:
        self.max_pixels = max_pixels
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Decode and check the mask.

        Args:
            results (dict): The sample.

        Returns:
            dict: The sample with ``gt_seg_map``.
        """
        data = _read_bytes(results, 'seg', self.backend_args)
        if results.get('seg_bytes') is not None:
            try:
                mask = load_npy_mask(data, self.max_pixels)
            except (ValueError, OSError, EOFError) as error:
                raise InvalidSampleError(*_where(results), 'segmentation is not a readable '
                                         f'.npy array ({error}); expected the bytes of an '
                                         'HxW .npy file') from error
        else:
            try:
                check_pixels(data, self.max_pixels)
            except ValueError as error:
                raise InvalidSampleError(*_where(results), f'mask {results["seg_map_path"]!r}: '
                                         f'{error}') from error
            mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if mask is None:
                raise InvalidSampleError(*_where(results), f'mask {results["seg_map_path"]!r} '
                                         'is not a decodable image; expected a PNG')
        if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype.kind not in 'biuf':
            shape = getattr(mask, 'shape', None)
            raise InvalidSampleError(*_where(results), f'the mask has shape {shape} and dtype '
                                     f'{getattr(mask, "dtype", None)}; expected a 2-D (H, W) '
                                     'numeric array')
        if 'img_shape' in results and mask.shape != tuple(results['img_shape'][:2]):
            h, w = results['img_shape'][:2]
            raise InvalidSampleError(*_where(results), f'the mask is {mask.shape[1]}x'
                                     f'{mask.shape[0]} but the images are {w}x{h} (WxH); '
                                     'expected the same size')
        odd = unexpected_mask_values(mask)
        if odd is not None:
            source, name = _where(results)
            warn_suspicious('mask_values', f'{source} (image_name={name!r}): {odd}; values '
                            '> 0 are read as foreground, the others (NaN too) as background')
        results.pop('seg_bytes', None)
        results['gt_seg_map'] = (mask > 0).astype(np.uint8)
        results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in results['seg_fields']:
            results['seg_fields'].append('gt_seg_map')
        return results
