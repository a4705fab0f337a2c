"""Run an exported RIS-FUSION with ONNX Runtime alone: no PyTorch, no mmrisfusion.

Example:
    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out work_dirs/onnx/model.onnx
    python demo/onnx_demo.py work_dirs/onnx/model.onnx vis.png ir.png \
        "the person on the left" --out onnx_out

Reads ``model.json`` and ``model.tokenizer.json``, which the export writes beside the
model: the decoding, resizing and normalisation of the config's test pipeline and its
tokenizer, so the inputs are those PyTorch gets. Writes ``fused.png``, ``mask.png`` (0 or
255) and ``overlay.png`` (the mask in red on the fused image) at the pair's own size, as
``demo/image_demo.py`` does. Needs numpy, OpenCV, Pillow, onnxruntime and tokenizers only
(``pip install onnxruntime tokenizers opencv-python pillow``).
"""
import argparse
import io
import json
import time
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np

META_FORMAT = 'mmrisfusion-onnx'
META_VERSION = 1
CV2_INTERPOLATION = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR,
                     'bicubic': cv2.INTER_CUBIC, 'area': cv2.INTER_AREA}
MASK_COLOR = (255, 0, 0)


def decode(path: str, gray: bool, backend: str) -> np.ndarray:
    """Read an image file as the pipeline's ``LoadRISImages`` does: RGB or gray uint8.

    Args:
        path (str): The image file.
        gray (bool): One luma channel instead of RGB.
        backend (str): 'pillow' or 'cv2' (both ignore EXIF orientation).

    Returns:
        np.ndarray: (H, W, 3) RGB or (H, W) gray.
    """
    data = Path(path).read_bytes()
    if backend == 'pillow':
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(io.BytesIO(data)) as image:
                return np.array(image.convert('L' if gray else 'RGB'))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
            raise ValueError(f'{path} is not a readable image') from error
    flags = (cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ValueError(f'{path} is not a readable image')
    return image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize(image: np.ndarray, size: Tuple[int, int], interpolation: str,
           backend: str) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) uint8 image to (height, width) as ``RISResize`` does."""
    height, width = size
    single = image.ndim == 3 and image.shape[2] == 1
    source = image[..., 0] if single else image
    if backend == 'pillow':
        from PIL import Image
        out = np.array(Image.fromarray(source).resize(
            (width, height), getattr(Image.Resampling, interpolation.upper())))
    else:
        out = cv2.resize(source, (width, height), interpolation=CV2_INTERPOLATION[interpolation])
    return out[..., None] if single else out


def _linear_taps(size_out: int, size_in: int, align_corners: bool) -> tuple:
    """Source indices and weights of 1-D linear interpolation, as PyTorch computes them."""
    dst = np.arange(size_out, dtype=np.float64)
    if align_corners:
        src = dst * ((size_in - 1) / (size_out - 1)) if size_out > 1 else np.zeros_like(dst)
    else:
        src = np.maximum((dst + 0.5) * (size_in / size_out) - 0.5, 0)
    low = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (src - low).astype(np.float32)


def resize_bilinear(array: np.ndarray, size: Tuple[int, int], align_corners: bool) -> np.ndarray:
    """Bilinear resize of a (C, H, W) float array to ``size`` = (H, W), as
    ``F.interpolate(mode='bilinear', align_corners=...)`` (no antialiasing)."""
    if tuple(array.shape[-2:]) == tuple(size):
        return array
    top, bottom, wy = _linear_taps(size[0], array.shape[-2], align_corners)
    left, right, wx = _linear_taps(size[1], array.shape[-1], align_corners)
    rows = array[:, top] * (1 - wy)[:, None] + array[:, bottom] * wy[:, None]
    return rows[:, :, left] * (1 - wx) + rows[:, :, right] * wx


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The mask in red (half opacity, full-opacity outline) on an RGB uint8 image."""
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(MASK_COLOR, np.float32)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, MASK_COLOR, 1)
    return out


class ONNXRISFusion:
    """An exported RIS-FUSION with its preprocessing and tokenizer, on ONNX Runtime.

    Args:
        onnx_file (str): The ``.onnx`` file; ``<stem>.json`` and the tokenizer it names
            must lie beside it.
        threads (int, optional): ONNX Runtime's intra-op threads. Defaults to None (its
            own choice).
    """

    def __init__(self, onnx_file: str, threads: Optional[int] = None) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as error:
            raise ImportError('the ONNX demo needs onnxruntime and tokenizers: '
                              'pip install onnxruntime tokenizers') from error
        onnx_file = Path(onnx_file)
        meta_file = onnx_file.with_suffix('.json')
        if not onnx_file.is_file() or not meta_file.is_file():
            raise FileNotFoundError(
                f'need {onnx_file} and {meta_file.name} beside it; '
                'tools/deployment/pytorch2onnx.py writes both')
        self.meta = json.loads(meta_file.read_text())
        if (self.meta.get('format'), self.meta.get('version')) != (META_FORMAT, META_VERSION):
            raise ValueError(f'{meta_file} is not a {META_FORMAT} version {META_VERSION} '
                             f'description (format {self.meta.get("format")!r}, version '
                             f'{self.meta.get("version")!r}); export the model again')
        self.tokenizer = Tokenizer.from_file(str(onnx_file.parent / self.meta['text']['tokenizer']))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(onnx_file), options,
                                                    providers=['CPUExecutionProvider'])

    def tokenize(self, text: str) -> Tuple[np.ndarray, np.ndarray]:
        """Token ids and mask (1, T) as ``TokenizeText``: special tokens, cut, zero-padded."""
        if not text.strip():
            raise ValueError('the expression is empty')
        spec = self.meta['text']
        ids = self.tokenizer.encode(text).ids[:spec['max_length']]
        token_ids = np.full((1, spec['max_length']), spec['pad_id'], dtype=np.int64)
        token_ids[0, :len(ids)] = ids
        token_mask = np.zeros((1, spec['max_length']), dtype=np.int64)
        token_mask[0, :len(ids)] = 1
        return token_ids, token_mask

    def load_pair(self, vis_path: str, ir_path: str) -> Tuple[np.ndarray, np.ndarray]:
        """Decode the pair as the config's ``LoadRISImages``; VIS (H, W, 3), IR (H, W, C)."""
        spec = self.meta['preprocess']
        vis = decode(vis_path, False, spec['decode_backend'])
        ir = decode(ir_path, spec['ir_channels'] == 1, spec['decode_backend'])
        ir = ir[..., None] if ir.ndim == 2 else ir
        if vis.shape[:2] != ir.shape[:2]:
            raise ValueError(f'VIS {vis_path} is {vis.shape[1]}x{vis.shape[0]} but IR {ir_path} '
                             f'is {ir.shape[1]}x{ir.shape[0]}; expected a registered pair')
        return vis, ir

    def preprocess(self, vis: np.ndarray, ir: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Resize and normalise a decoded pair into the graph's (1, C, H, W) float32 inputs."""
        spec = self.meta['preprocess']
        inputs = []
        for image, key in ((vis, 'vis'), (ir, 'ir')):
            image = resize(image, spec['input_size'], spec['resize_interpolation'],
                           spec['resize_backend'])
            chw = image.reshape(*image.shape[:2], -1).transpose(2, 0, 1).astype(np.float32)
            mean = np.asarray(spec[f'{key}_mean'], np.float32).reshape(-1, 1, 1)
            std = np.asarray(spec[f'{key}_std'], np.float32).reshape(-1, 1, 1)
            inputs.append(((chw - mean) / std)[None])
        return inputs[0], inputs[1]

    def run(self, vis: np.ndarray, ir: np.ndarray,
            text: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fuse and segment a decoded pair; outputs at the pair's size.

        Args:
            vis (np.ndarray): (H, W, 3) RGB uint8.
            ir (np.ndarray): (H, W, C) uint8.
            text (str): The referring expression.

        Returns:
            tuple: ``fused`` (H, W, 3) uint8 RGB, ``mask`` (H, W) bool and ``logits``
            (K, H, W) float32.
        """
        token_ids, token_mask = self.tokenize(text)
        vis_input, ir_input = self.preprocess(vis, ir)
        logits, fused = self.session.run(['seg_logits', 'fused'], dict(
            token_ids=token_ids, token_mask=token_mask, vis=vis_input, ir=ir_input))
        size, align_corners = vis.shape[:2], self.meta['postprocess']['align_corners']
        logits = resize_bilinear(logits[0], size, align_corners)
        fused = resize_bilinear(fused[0], size, align_corners).clip(0, 1)
        fused = np.ascontiguousarray(np.rint(fused.transpose(1, 2, 0) * 255).astype(np.uint8))
        # Two classes: argmax; one (sigmoid) class: logit > 0.
        mask = logits.argmax(0) > 0 if logits.shape[0] > 1 else logits[0] > 0
        return fused, mask, logits


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Fuse and segment one IR/VIS pair with an '
                                     'exported RIS-FUSION on ONNX Runtime')
    parser.add_argument('model', help='the .onnx file (model.json and its tokenizer beside it)')
    parser.add_argument('vis', help='visible image file')
    parser.add_argument('ir', help='infrared image file')
    parser.add_argument('text', help='the referring expression')
    parser.add_argument('--out', default='onnx_out', help='output folder')
    parser.add_argument('--threads', type=int, help='ONNX Runtime intra-op threads')
    return parser.parse_args()


def write_rgb(path: Path, image: np.ndarray) -> None:
    """Write an RGB (or gray) uint8 image, failing loudly."""
    data = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), data):
        raise OSError(f'could not write {path}')


def main() -> None:
    """Run the model on the pair and write the pictures."""
    args = parse_args()
    model = ONNXRISFusion(args.model, threads=args.threads)
    vis, ir = model.load_pair(args.vis, args.ir)
    start = time.perf_counter()
    fused, mask, _ = model.run(vis, ir, args.text)
    seconds = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rgb(out / 'fused.png', fused)
    write_rgb(out / 'mask.png', mask.astype(np.uint8) * 255)
    write_rgb(out / 'overlay.png', overlay(fused, mask))
    print(f'{args.text!r}: {mask.mean():.1%} of the image referred, {seconds * 1e3:.0f} ms; '
          f'wrote fused.png, mask.png, overlay.png to {out}')


if __name__ == '__main__':
    main()
