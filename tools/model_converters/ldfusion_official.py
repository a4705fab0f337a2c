"""Convert the published LDFusion weights into a checkpoint of this project.

Examples:
    python tools/model_converters/ldfusion_official.py weight/Enc_final.pt weight/Dec_final.pt \
        work_dirs/ldfusion_official.pth
    python tools/model_converters/ldfusion_official.py official_net.pth out.safetensors

The published trainer saves two bare state dicts, ``Enc_{epoch}.pt`` and ``Dec_{epoch}.pt``
(the released weights are ``weight/Enc_final.pt`` and ``weight/Dec_final.pt``,
docs/ldfusion.md#published-checkpoints); give that pair, in either order, or one file holding
``{'Enc': ..., 'Dec': ...}``. They are read with weights only. The architecture is read from
the tensor shapes and must be the one of ``--config`` (default: the shipped LDFusion config);
the written weights are ``FusionModel``'s (``fuser.*``), loaded strictly by
``tools/test.py CONFIG DST`` and ``mmrisfusion.apis.init_model(CONFIG, DST)``. The config's
fuser crops the output from the top-left corner, as the published code: with
``output_crop='center'`` the published weights do not reproduce the published outputs.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, Optional, Tuple

import torch
from mmengine.config import Config

from mmrisfusion.models.utils.ckpt_convert import convert_ldfusion_official
from mmrisfusion.utils.checkpoint import load_weights_only, save_weights

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO_ROOT, 'configs', 'ldfusion',
                          'ldfusion_munit_clip_1xb16-100e_roadscene-224x224_tno.py')
#: A key only the published encoder has, and one only the decoder has.
ENCODER_KEY = 'content_encoder1.model.1.weight'
DECODER_KEY = 'mlp.model.0.weight'


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Convert the published LDFusion weights (Enc_final.pt + Dec_final.pt, or '
        "one file with {'Enc', 'Dec'}) into an mmrisfusion checkpoint")
    parser.add_argument('src', nargs='+',
                        help="Enc_final.pt and Dec_final.pt, or one file with {'Enc', 'Dec'}")
    parser.add_argument('dst', help='the checkpoint to write, .pth (weights only) or '
                        '.safetensors')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='the config the weights are for (default: the shipped LDFusion '
                        'config); its model.fuser must match the converted architecture')
    return parser.parse_args(argv)


def _read(path: str) -> dict:
    """One source file, loaded weights-only, with a clear error for anything else."""
    if not osp.isfile(path):
        raise SystemExit(f'{path}: no such file (a published LDFusion weight file)')
    state = load_weights_only(path)
    if not isinstance(state, dict):
        raise SystemExit(f'{path} holds a {type(state).__name__}, not a state dict')
    return state


def _strip_module(state: dict) -> dict:
    """Keys without a DistributedDataParallel ``module.`` prefix."""
    return {key.removeprefix('module.'): value for key, value in state.items()}


def read_published(paths: list) -> Tuple[dict, dict]:
    """The published encoder and decoder state dicts from one or two files.

    Args:
        paths (list[str]): ``Enc_final.pt`` and ``Dec_final.pt`` (any order), or one file
            holding ``{'Enc': ..., 'Dec': ...}``.

    Returns:
        tuple[dict, dict]: The encoder and decoder state dicts.
    """
    if len(paths) == 1:
        state = _read(paths[0])
        if not {'Enc', 'Dec'} <= set(state):
            raise SystemExit(f"{paths[0]} must hold {{'Enc': ..., 'Dec': ...}} (found keys "
                             f'{sorted(state)[:5]}); or give Enc_final.pt and Dec_final.pt')
        return state['Enc'], state['Dec']
    if len(paths) != 2:
        raise SystemExit(f'give Enc_final.pt and Dec_final.pt, or one combined file; got '
                         f'{len(paths)} files')
    parts = {}
    for path in paths:
        state = _read(path)
        keys = set(_strip_module(state))
        kind = 'Enc' if ENCODER_KEY in keys else 'Dec' if DECODER_KEY in keys else None
        if kind is None:
            raise SystemExit(f'{path} is neither the published encoder (no {ENCODER_KEY!r}) '
                             f'nor the decoder (no {DECODER_KEY!r})')
        if kind in parts:
            raise SystemExit(f'{paths[0]} and {paths[1]} are both the published {kind}')
        parts[kind] = state
    return parts['Enc'], parts['Dec']


def build_fuser(fuser: Dict, state_dict: Dict, config: str) -> torch.nn.Module:
    """The config's fuser, after checking that the converted weights fit it.

    Args:
        fuser (dict): The ``LDFusionNet`` config read from the weights.
        state_dict (dict): The converted weights (``LDFusionNet`` names).
        config (str): The config file.

    Returns:
        nn.Module: ``model.fuser`` of the config, built.
    """
    from mmrisfusion.registry import MODELS
    from mmrisfusion.utils import register_all_modules
    register_all_modules()
    fuser_cfg = Config.fromfile(config).model.get('fuser', {})
    if fuser_cfg.get('type') != 'LDFusionNet':
        raise SystemExit(f'{config}: model.fuser must be an LDFusionNet, got '
                         f"{fuser_cfg.get('type')!r}")
    net = MODELS.build(fuser_cfg)
    shapes = {key: tuple(value.shape) for key, value in net.state_dict().items()}
    if shapes != {key: tuple(value.shape) for key, value in state_dict.items()}:
        raise SystemExit(f'{config}: model.fuser ({dict(fuser_cfg)}) is not the architecture '
                         f'of the weights ({fuser}); pass --config with a matching fuser')
    if net.output_crop != 'top_left':
        print(f'warning: {config} crops the output at the centre; the published weights '
              "reproduce the published outputs only with output_crop='top_left'",
              file=sys.stderr)
    return net


def main(argv: Optional[list] = None) -> int:
    """Convert, check against the config, write, and load the result back strictly."""
    args = parse_args(argv)
    enc, dec = read_published(args.src)
    state_dict, fuser = convert_ldfusion_official(enc, dec)
    holder = torch.nn.Module()  # 'fuser' as the only child, as inside FusionModel
    holder.fuser = build_fuser(fuser, state_dict, args.config)
    weights = {f'fuser.{key}': value for key, value in state_dict.items()}
    if osp.dirname(args.dst):
        os.makedirs(osp.dirname(args.dst), exist_ok=True)
    meta = dict(source=[osp.basename(path) for path in args.src], fuser=fuser,
                converter='tools/model_converters/ldfusion_official.py')
    save_weights(weights, args.dst, meta)

    from mmrisfusion.apis.inference import load_model_checkpoint
    load_model_checkpoint(holder, args.dst, strict=True)
    print(f'fuser: {json.dumps(fuser)}')
    print(f'wrote {args.dst} ({len(weights)} tensors, '
          f'{sum(v.numel() for v in weights.values()):,} parameters); it loads strictly into '
          f'the fuser of {args.config}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
