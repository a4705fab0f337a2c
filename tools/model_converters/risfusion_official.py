"""Convert an official RIS-FUSION checkpoint into a config and weights of this project.

Examples:
    python tools/model_converters/risfusion_official.py model_best_lavt.pth work_dirs/official \
        --bert data/pretrained/bert-base-uncased
    python tools/model_converters/risfusion_official.py official_tiny.pth out --format pth

The official file (``{'model', 'prefusion_model', 'epoch', 'args'}``, see
docs/risfusion.md#official-checkpoints) is read with weights only (``argparse.Namespace``
allowed for ``args``). The architecture is inferred from the tensor shapes; the written
config is ``--base-config`` (default: the published recipe ``configs/risfusion_swin-b.py``
when it exists) with the model's ``text_encoder``, ``fuser``, ``backbone`` and
``decode_head`` replaced by the inferred ones, and the weights are in ``RISFusion``'s names,
loadable with ``mmrisfusion.apis.init_model(config, checkpoint)`` (strictly, when BERT
weights are given).

The published best checkpoint has no BERT weights (a bug of the published code): pass
``--bert DIR``, a local Hugging Face bert-base-uncased folder, to complete the checkpoint and
to make it the text encoder of the written config.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, Optional

from mmengine.config import Config

from mmrisfusion.models.utils.ckpt_convert import convert_risfusion_official
from mmrisfusion.utils.checkpoint import load_weights_only, save_weights

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_BASE_CONFIG = osp.join(REPO_ROOT, 'configs', 'risfusion_swin-b.py')


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Convert an official RIS-FUSION checkpoint (model + prefusion_model) into '
        'an mmrisfusion config and checkpoint')
    parser.add_argument('src', help='official checkpoint, e.g. model_best_lavt.pth')
    parser.add_argument('out_dir', help='folder for <name>.py and <name>.pth/.safetensors')
    parser.add_argument('--bert', metavar='DIR',
                        help='local Hugging Face BERT folder (bert-base-uncased): its weights '
                        'go into the checkpoint and the config loads the text encoder from it')
    parser.add_argument('--base-config', default=None,
                        help='config whose model parts are replaced (default: '
                        'configs/risfusion_swin-b.py if it exists, else a model-only config)')
    parser.add_argument('--format', choices=['pth', 'safetensors'], default='pth',
                        help='weights file format (default: pth, weights only)')
    parser.add_argument('--name', help='base name of the outputs (default: the source name)')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip building the model from the written config and loading '
                        'the written weights')
    return parser.parse_args(argv)


def build_config(parts: Dict[str, dict], base_config: Optional[str]) -> Config:
    """The written config: the base config with the converted model parts.

    Args:
        parts (dict[str, dict]): Configs of ``text_encoder``, ``fuser``, ``backbone`` and
            ``decode_head``.
        base_config (str, optional): A config whose ``model`` is a ``RISFusion``; None
            for a config with only the model.

    Returns:
        Config: The config to dump.
    """
    if base_config is None:
        return Config(dict(default_scope='mmrisfusion', model=dict(type='RISFusion', **parts)))
    cfg = Config.fromfile(base_config)
    if cfg.get('model', {}).get('type') != 'RISFusion':
        raise ValueError(f'--base-config {base_config} must define model=dict(type='
                         f"'RISFusion', ...), got type {cfg.get('model', {}).get('type')!r}")
    for name, part in parts.items():
        # Replace, not merge: keys of the base part (e.g. a pretrained Swin file) must not
        # leak into the converted architecture.
        cfg.model[name] = part
    return cfg


def main(argv: Optional[list] = None) -> int:
    """Convert, write, and (unless ``--no-verify``) check that the outputs load strictly."""
    args = parse_args(argv)
    if not osp.isfile(args.src):
        raise SystemExit(f'{args.src}: no such file (an official RIS-FUSION checkpoint)')
    if args.bert is not None and not osp.isdir(args.bert):
        raise SystemExit(f'--bert {args.bert}: no such folder (a local Hugging Face '
                         'bert-base-uncased folder)')
    checkpoint = load_weights_only(args.src, extra_types=[argparse.Namespace])
    state_dict, parts = convert_risfusion_official(checkpoint, bert_folder=args.bert)
    has_text_weights = any(k.startswith('text_encoder.') for k in state_dict)

    base_config = args.base_config
    if base_config is None and osp.isfile(DEFAULT_BASE_CONFIG):
        base_config = DEFAULT_BASE_CONFIG
    cfg = build_config(parts, base_config)

    os.makedirs(args.out_dir, exist_ok=True)
    name = args.name or osp.splitext(osp.basename(args.src))[0]
    config_path = osp.join(args.out_dir, f'{name}.py')
    weights_path = osp.join(args.out_dir, f'{name}.{args.format}')
    cfg.dump(config_path)
    meta = dict(source=osp.basename(args.src), epoch=int(checkpoint.get('epoch', -1)),
                converter='tools/model_converters/risfusion_official.py')
    save_weights(state_dict, weights_path, meta)

    print(f'backbone: {json.dumps(parts["backbone"])}')
    print(f'decode_head: {json.dumps(parts["decode_head"])}')
    print(f'fuser: {json.dumps(parts["fuser"])}')
    print(f'text_encoder: {json.dumps(parts["text_encoder"])}')
    print(f'wrote {config_path} and {weights_path} ({len(state_dict)} tensors)')
    if not has_text_weights:
        print('warning: the checkpoint has no BERT weights (the published best checkpoint '
              'omits them); the text encoder is a random bert-base and a strict load reports '
              'its weights missing. Pass --bert DIR to include them.', file=sys.stderr)
    if args.no_verify:
        return 0
    from mmrisfusion.apis import init_model
    if has_text_weights:
        model = init_model(config_path, weights_path)
    else:
        model = init_model(config_path)
        result = model.load_state_dict(state_dict, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith('text_encoder.')]
        if missing or result.unexpected_keys:
            raise RuntimeError(f'the converted weights do not match the written config: '
                               f'missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}')
    parts_count = {part: sum(p.numel() for p in getattr(model, part).parameters())
                   for part in ('text_encoder', 'fuser', 'backbone', 'decode_head')}
    print('verified: the written config builds and the weights load; parameters: ' +
          ', '.join(f'{k} {v / 1e6:.2f}M' for k, v in parts_count.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
