"""Convert an official Swin Transformer checkpoint to ``LAVTSwinTransformer`` names.

Example:
    python tools/model_converters/swin_official.py \
        swin_base_patch4_window12_384_22k.pth data/pretrained/swin_b22k_lavt.pth

``LAVTSwinTransformer(init_cfg=dict(type='Pretrained', checkpoint=...))`` reads the official
file directly; converting once ahead saves the renaming at every start and gives a
weights-only file. The classifier, the final norm and the ``attn_mask`` buffers are dropped,
and with ``--window-size`` the relative position tables are resized (bicubic) to another
window.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional

import torch

from mmrisfusion.models.utils.ckpt_convert import convert_swin_official
from mmrisfusion.utils.checkpoint import load_weights_only


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Convert an official Swin checkpoint to LAVTSwinTransformer names')
    parser.add_argument('src', help='official file, e.g. swin_base_patch4_window12_384_22k.pth')
    parser.add_argument('dst', help='output .pth (weights only)')
    parser.add_argument('--window-size', type=int, default=None,
                        help='resize the relative position tables to this window '
                        '(default: keep the checkpoint\'s)')
    return parser.parse_args(argv)


def main(argv: Optional[list] = None) -> int:
    """Convert ``src`` and write ``dst``."""
    args = parse_args(argv)
    if not osp.isfile(args.src):
        raise SystemExit(f'{args.src}: no such file (an official Swin checkpoint, e.g. '
                         'swin_base_patch4_window12_384_22k.pth from '
                         'github.com/SwinTransformer/storage/releases)')
    checkpoint = load_weights_only(args.src)
    state_dict = checkpoint.get('model', checkpoint.get('state_dict', checkpoint))
    converted = convert_swin_official(state_dict, window_size=args.window_size)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=converted, meta=dict(source=osp.basename(args.src))), args.dst)
    print(f'wrote {args.dst}: {len(converted)} tensors')
    return 0


if __name__ == '__main__':
    sys.exit(main())
