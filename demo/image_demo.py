"""Fuse one IR/VIS pair and segment what an expression refers to.

Example:
    python demo/image_demo.py vis.png ir.png "the person on the left" \
        configs/risfusion_swin-b.py risfusion.safetensors --out demo_out

Writes ``fused.png``, ``mask.png`` (0 or 255), ``overlay.png`` (the mask in red on the fused
image) and ``panel.png`` (VIS, IR, fused, prediction and the expression) to ``--out``.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np

from mmrisfusion.apis import inference_model, init_model
from mmrisfusion.visualization import draw_ris_panel, overlay_mask


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Text-driven IR/VIS fusion and referring '
                                     'segmentation of one image pair')
    parser.add_argument('vis', help='visible image file')
    parser.add_argument('ir', help='infrared image file')
    parser.add_argument('text', help='the referring expression')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='.pth (weights only) or .safetensors checkpoint')
    parser.add_argument('--out', default='demo_out', help='output folder')
    parser.add_argument('--device', default='cpu', help='device, e.g. cpu or cuda:0')
    return parser.parse_args()


def write_rgb(path: Path, image: np.ndarray) -> None:
    """Write an RGB (or gray) uint8 image, failing loudly."""
    data = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), data):
        raise OSError(f'could not write {path}')


def read_rgb(path: str) -> np.ndarray:
    """Read an image file as RGB uint8, failing with the file's name."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'could not read the image {path}')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def main() -> None:
    """Run the model on the pair and write the pictures."""
    args = parse_args()
    model = init_model(args.config, args.checkpoint, device=args.device)
    result = inference_model(model, args.vis, args.ir, args.text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vis, ir = read_rgb(args.vis), read_rgb(args.ir)
    base = result.fused if result.fused is not None else vis
    if result.fused is not None:
        write_rgb(out / 'fused.png', result.fused)
    if result.mask is not None:
        write_rgb(out / 'mask.png', result.mask.astype(np.uint8) * 255)
        write_rgb(out / 'overlay.png', overlay_mask(base, result.mask))
    write_rgb(out / 'panel.png', draw_ris_panel(vis, ir, result.fused, result.mask,
                                                text=args.text))
    print(f'wrote {sorted(p.name for p in out.iterdir())} to {out}')


if __name__ == '__main__':
    main()
