"""Convert a LAVT checkpoint (yz93/LAVT-RIS) into weights that initialise RIS-FUSION.

Examples:
    python tools/model_converters/lavt_official.py LAVT.pth \
        data/pretrained/lavt_one_swin-b_refcocoplus_mmrisfusion.pth

    LAVT.pth: the RefCOCO+ ``lavt_one`` file of the LAVT-RIS release the published README names,
    ``lavt_one_8_cards_ImgNet22KPre_swin-base-window12_refcoco+_adamw_b32lr0.00005wd1e-2_E40``.

The published RIS-FUSION run starts from a LAVT checkpoint trained on RefCOCO+ (its README's
``--init_from_lavt_one``). Both of LAVT's layouts are read (docs/risfusion.md#lavt-checkpoints):
``lavt_one`` (``{'model': backbone.*, classifier.*, text_encoder.* (BERT)}``) and ``lavt``
(``model`` without BERT, BERT as ``bert_model``); the optimizer, scheduler and epoch are dropped.
The file is read weights-only (``argparse.Namespace`` allowed for ``args``). The output
(``.pth`` weights-only, or ``.safetensors``) holds ``backbone.*``, ``decode_head.*`` and
``text_encoder.model.*`` of ``RISFusion``; the fuser is not part of LAVT and keeps its
initialisation. The LAVT-init config starts from it through ``load_from``.

The architecture is inferred from the tensor shapes and printed. Unless ``--no-verify``, the
backbone and decode head of ``--config`` (default: the LAVT-init config) are built and must take
the weights strictly, and BERT must match a BERT of the inferred sizes.
"""
import argparse
import copy
import json
import os.path as osp
import sys
from typing import Dict, Optional

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmrisfusion.models.utils.ckpt_convert import convert_lavt_checkpoint
from mmrisfusion.registry import MODELS
from mmrisfusion.utils.checkpoint import load_weights_only, save_weights

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'risfusion',
    'risfusion_swin-b_bert_1xb16-lavt-refcocoplus-init-10e_mm-ris-480x480.py')


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Convert a LAVT checkpoint (lavt_one or lavt + bert_model) into weights '
        'that initialise the backbone, decode head and text encoder of RISFusion')
    parser.add_argument('src', help='LAVT checkpoint, e.g. lavt_one_8_cards_..._E40.pth')
    parser.add_argument('dst', help='output weights, .pth (weights only) or .safetensors')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='config whose backbone and decode_head must take the weights '
                        '(default: the LAVT-init RIS-FUSION config)')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip building the config\'s modules and loading the weights')
    return parser.parse_args(argv)


def _part(state_dict: Dict[str, torch.Tensor], name: str) -> Dict[str, torch.Tensor]:
    prefix = f'{name}.'
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def verify(state_dict: Dict[str, torch.Tensor], parts: Dict[str, dict], config: str) -> None:
    """Load the weights strictly into the config's backbone and decode head (on the meta
    device: shapes and names, no memory) and into a BERT of the inferred sizes.

    Raises:
        SystemExit: With the inferred architecture, when a part does not take its weights.
    """
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmrisfusion'))
    modules = {name: copy.deepcopy(cfg.model[name]) for name in ('backbone', 'decode_head')}
    modules['text_encoder'] = parts['text_encoder']
    for name, module_cfg in modules.items():
        with torch.device('meta'):
            module = MODELS.build(module_cfg)
        try:
            module.load_state_dict(_part(state_dict, name), strict=True, assign=True)
        except RuntimeError as error:
            where = f'the {name} of {config}' if name != 'text_encoder' else 'the inferred BERT'
            raise SystemExit(f'the converted {name} weights do not fit {where}: '
                             f'{str(error)[:800]}\nThe checkpoint\'s architecture: '
                             f'{json.dumps(parts[name])}') from error


def main(argv: Optional[list] = None) -> int:
    """Convert, write, and (unless ``--no-verify``) check the weights against the config."""
    args = parse_args(argv)
    if not osp.isfile(args.src):
        raise SystemExit(f'{args.src}: no such file (a LAVT checkpoint, e.g. '
                         'lavt_one_8_cards_ImgNet22KPre_swin-base-window12_refcoco+_..._E40.pth '
                         'from the LAVT-RIS release)')
    checkpoint = load_weights_only(args.src, extra_types=[argparse.Namespace])
    state_dict, parts, layout = convert_lavt_checkpoint(checkpoint)
    source_count = len(checkpoint['model']) + len(checkpoint.get('bert_model', {}))
    print(f'{args.src}: LAVT layout {layout!r}, {source_count} tensors')
    for name in ('backbone', 'decode_head', 'text_encoder'):
        print(f'{name}: {json.dumps(parts[name])}')
    if len(state_dict) != source_count:
        print(f'note: {source_count - len(state_dict)} tensors of the source have no place in '
              'RISFusion and were left out', file=sys.stderr)
    if not args.no_verify:
        verify(state_dict, parts, args.config)
        print(f'verified: the backbone and decode_head of {args.config} and the BERT take the '
              'weights strictly')
    meta = dict(source=osp.basename(args.src), layout=layout,
                epoch=int(checkpoint.get('epoch', -1)),
                converter='tools/model_converters/lavt_official.py')
    save_weights(state_dict, args.dst, meta)
    counts = {name: len(_part(state_dict, name))
              for name in ('backbone', 'decode_head', 'text_encoder')}
    print(f'wrote {args.dst}: {len(state_dict)} tensors (' +
          ', '.join(f'{name} {count}' for name, count in counts.items()) +
          '); the fuser is not in LAVT and keeps its initialisation')
    return 0


if __name__ == '__main__':
    sys.exit(main())
