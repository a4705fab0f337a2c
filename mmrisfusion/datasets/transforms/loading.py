"""Decode the VIS/IR pair and the referred object's mask, from bytes or paths."""
import io
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio

from mmrisfusion.registry import TRANSFORMS

from ..base_ris_dataset import InvalidSampleError

DECODE_BACKENDS = ('pillow', 'cv2')


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


def decode_image(data: bytes, gray: bool, backend: str = 'pillow') -> Optional[np.ndarray]:
    """Decode PNG/JPEG/... bytes to RGB (H, W, 3) or gray (H, W) uint8; None if undecodable.

    Args:
        data (bytes): Encoded image.
        gray (bool): Decode to one luma channel (ITU-R 601 weights) instead of RGB.
        backend (str): 'pillow' (what the published code uses) or 'cv2'. Both ignore EXIF
            orientation, as the published loader does. Defaults to 'pillow'.

    Returns:
        np.ndarray | None: The image, or None when the bytes are not a readable image.
    """
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
        backend_args (dict, optional): mmengine file backend arguments for paths.
            Defaults to None.
    """

    def __init__(self,
                 ir_channels: int = 3,
                 decode_backend: str = 'pillow',
                 backend_args: Optional[dict] = None) -> None:
        if ir_channels not in (1, 3):
            raise ValueError(f'ir_channels must be 1 or 3, got {ir_channels}')
        if decode_backend not in DECODE_BACKENDS:
            raise ValueError(f'decode_backend must be one of {DECODE_BACKENDS}, '
                             f'got {decode_backend!r}')
        self.ir_channels = ir_channels
        self.decode_backend = decode_backend
        self.backend_args = backend_args

    def _decode(self, results: dict, modality: str, gray: bool) -> np.ndarray:
        img = decode_image(_read_bytes(results, modality, self.backend_args), gray,
                           self.decode_backend)
        if img is None:
            column = 'visible_image' if modality == 'vis' else 'infrared_image'
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
                f'decode_backend={self.decode_backend!r})')


@TRANSFORMS.register_module()
class LoadRISAnnotation(BaseTransform):
    """Load the referred object's mask as a binary map (1 = referred object).

    From ``seg_bytes`` (MM-RIS: the bytes of a ``.npy`` HxW array, read with
    ``allow_pickle=False``) or ``seg_map_path`` (an image, e.g. PNG, read unchanged).
    Foreground is every value > 0, as in the published loader.

    Required keys: ``seg_bytes`` or ``seg_map_path``; ``img_shape`` when the images are
    loaded first (the mask must match their size).

    Added keys: ``gt_seg_map`` (H, W uint8 in {0, 1}), appended to ``seg_fields``.

    Modified keys: ``seg_bytes`` is dropped once decoded.

    Args:
        backend_args (dict, optional): mmengine file backend arguments for paths.
            Defaults to None.
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
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
                mask = np.load(io.BytesIO(data), allow_pickle=False)
            except (ValueError, OSError, EOFError) as error:
                raise InvalidSampleError(*_where(results), 'segmentation is not a readable '
                                         f'.npy array ({error}); expected the bytes of an '
                                         'HxW .npy file') from error
        else:
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
        results.pop('seg_bytes', None)
        results['gt_seg_map'] = (mask > 0).astype(np.uint8)
        results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in results['seg_fields']:
            results['seg_fields'].append('gt_seg_map')
        return results
