"""Export a RIS-FUSION checkpoint to ONNX and check it against PyTorch with ONNX Runtime.

Example:
    python tools/deployment/pytorch2onnx.py CONFIG work_dirs/demo/iter_1300.pth \
        --shape 128 128 --out work_dirs/onnx/model.onnx

with CONFIG the ``make demo`` model's (``config=`` in tools/demo.sh).

The graph is the whole network, text encoder included: token ids, token mask and the
normalised VIS and IR images in; segmentation logits and the fused image out (batch 1,
fixed input size). Beside the model go ``model.json`` (preprocessing, post-processing, the
check's figures) and ``model.tokenizer.json``; ``demo/onnx_demo.py`` runs the three with
ONNX Runtime alone. After the export ONNX Runtime and PyTorch run on the same inputs; the
tool prints the max abs difference of each output and exits with status 1 above
``--tolerance``. See ``mmrisfusion/deployment/onnx_export.py`` for the contract.
"""
import argparse
import sys
import time

from mmengine.config import DictAction

from mmrisfusion.apis import init_model
from mmrisfusion.apis.model_zoo import warn_if_deprecated
from mmrisfusion.deployment import (
    DEFAULT_TOLERANCE,
    ExportCheckError,
    UnsupportedConfigError,
    export_onnx,
)


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Export RIS-FUSION to ONNX and check it')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='.pth (loaded weights only) or .safetensors')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width (default: the size the test pipeline '
                        'resizes to)')
    parser.add_argument('--out', default='work_dirs/onnx/model.onnx',
                        help='the .onnx file; model.json and model.tokenizer.json go beside it')
    parser.add_argument('--opset', type=int, help='ONNX opset (default: the exporter\'s)')
    parser.add_argument('--tolerance', type=float, default=DEFAULT_TOLERANCE,
                        help='largest max abs difference to PyTorch accepted')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    return parser.parse_args()


def main() -> None:
    """Export, check, report."""
    args = parse_args()
    warn_if_deprecated(args.config)
    model = init_model(args.config, args.checkpoint, device='cpu', cfg_options=args.cfg_options)
    start = time.perf_counter()
    try:
        meta = export_onnx(model, args.out, shape=args.shape, opset=args.opset,
                           tolerance=args.tolerance)
    except UnsupportedConfigError as error:
        sys.exit(f'cannot export: {error}')
    except ExportCheckError as error:
        sys.exit(f'check FAILED: {error}')
    check = meta['check']
    height, width = meta['preprocess']['input_size']
    print(f'exported {args.out} ({height}x{width}, opset {meta["opset"]}) in '
          f'{time.perf_counter() - start:.1f} s')
    print('max abs difference ONNX Runtime vs PyTorch: ' + ', '.join(
        f'{name} {value:.2e}' for name, value in check['max_abs_diff'].items())
        + f' (tolerance {check["tolerance"]:g}): OK')
    print('for scale, PyTorch float32 vs float64 on the same inputs: ' + ', '.join(
        f'{name} {value:.2e}' for name, value in check['float32_noise'].items()))


if __name__ == '__main__':
    main()
