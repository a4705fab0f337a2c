"""Check that a converted official RIS-FUSION checkpoint reproduces the published outputs.

Example, with ``REFERENCE`` a folder of reference files made by running the published code::

    python tools/analysis_tools/check_reference.py \
        REFERENCE/risfusion/official_tiny.pth REFERENCE/risfusion/io_tiny.pt

The official checkpoint is converted (``convert_risfusion_official``), a ``RISFusion`` is
built from the inferred architecture, and the IO file's inputs (``vis``, ``ir``,
``text_feats`` (B, T, 768), ``text_mask``; the text encoder is bypassed, as the published
outputs were computed from given word features) go through it in eval mode. Printed: the
maximum absolute difference of ``fused``, ``logits``, each of ``backbone_outs``,
``dice_loss`` and the fusion loss before (``fusion_loss_raw``) and after
(``fusion_loss_weighted``) lambda, with the published weights (docs/risfusion.md#fusion-loss),
next to each output's float32 rounding noise (our float32 run against our float64 run). The
exit status is 1 when a difference exceeds ``--tolerance`` (1e-4) plus twice that noise, or
``--tolerance`` alone with ``--strict``.

Why the noise term: LAVT's instance norms cancel most digits of channels whose spatial
spread is tiny next to their mean, so float32 rounding is amplified about 1e4 times in the
backbone maps (about 1e-3 on the tiny reference). The published numbers depend on the thread
count: on a 2-core CPU with 2 threads our outputs equal the published tiny reference bit for
bit (and ``--strict`` passes), with 1 thread the backbone maps differ by up to 1.2e-3. A
wrong implementation differs by orders of magnitude more.
The decoder output (``logits``), the fused image and the losses are well conditioned and
are held to the tolerance itself.

Any checkpoint and IO file of that layout work, whatever the sizes, batch or image shape.
"""
import argparse
import copy
import sys
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.registry import init_default_scope
from torch import Tensor

from mmrisfusion.models.utils.ckpt_convert import convert_risfusion_official
from mmrisfusion.utils.checkpoint import load_weights_only

#: The published fusion terms and weights (RIS-FUSION README): lambda 3.0, ssim_vis 0.5,
#: mse_vis 0.5, mse_ir 2.0, sobel_ir 1.0, grad 1.0, the others 0.
PUBLISHED_FUSION_LOSSES = [
    dict(type='SSIMLoss', source='vis', loss_weight=0.5),
    dict(type='LumaMSELoss', source='vis', loss_weight=0.5),
    dict(type='LumaMSELoss', source='ir', loss_weight=2.0),
    dict(type='SobelL1Loss', source='ir', loss_weight=1.0),
    dict(type='JointGradientLoss', loss_weight=1.0),
]
PUBLISHED_LAMBDA = 3.0
#: An output may differ by the tolerance plus this many times its float32 rounding noise:
#: our float32 result and the published one each carry about that noise.
NOISE_FACTOR = 2.0
#: The published segmentation loss.
PUBLISHED_SEG_LOSS = dict(type='TwoClassDiceLoss')
IO_KEYS = ('vis', 'ir', 'text_feats', 'text_mask', 'target', 'fused', 'logits',
           'backbone_outs', 'dice_loss', 'fusion_loss_raw', 'fusion_loss_weighted')


def _stand_in_text_encoder(text_dims: int) -> dict:
    """A tiny text encoder: the check feeds word features directly, so it never runs."""
    return dict(type='HFTextEncoder', out_channels=text_dims,
                hf_config=dict(model_type='bert', vocab_size=8, hidden_size=8,
                               num_hidden_layers=1, num_attention_heads=1,
                               intermediate_size=8, max_position_embeddings=8))


def build_reference_model(checkpoint: dict) -> torch.nn.Module:
    """Convert an official checkpoint and build the ``RISFusion`` that holds its weights.

    Args:
        checkpoint (dict): The loaded official checkpoint.

    Returns:
        nn.Module: The model in eval mode, with the published fusion losses.

    Raises:
        RuntimeError: When the converted weights do not fill the model built from the
            inferred architecture (every weight but the bypassed text encoder's).
    """
    from mmrisfusion.registry import MODELS
    state_dict, parts = convert_risfusion_official(checkpoint)
    parts['text_encoder'] = _stand_in_text_encoder(parts['backbone']['text_dims'])
    model = MODELS.build(
        dict(type='RISFusion', **parts, fusion_losses=PUBLISHED_FUSION_LOSSES,
             fusion_loss_weight=PUBLISHED_LAMBDA))
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith('text_encoder.')]
    if missing or result.unexpected_keys:
        raise RuntimeError(f'the converted weights do not fill the model: missing {missing[:5]}, '
                           f'unexpected {result.unexpected_keys[:5]}')
    return model.eval()


def _load_io(path: str) -> dict:
    """Read the IO file and check it has every entry the comparison needs."""
    io = load_weights_only(path)
    missing = [k for k in IO_KEYS if k not in io]
    if missing:
        raise KeyError(f'{path} lacks {missing}; an IO file has {list(IO_KEYS)}')
    return io


def _max_abs_diff(name: str, ours: Tensor, theirs: Tensor) -> float:
    """Maximum absolute difference, with a clear error on a shape mismatch."""
    if ours.shape != theirs.shape:
        raise ValueError(f'{name}: our output has shape {tuple(ours.shape)}, the reference '
                         f'{tuple(theirs.shape)}')
    return (ours.double() - theirs.double()).abs().max().item()


def model_outputs(model: torch.nn.Module, io: dict, dtype: torch.dtype) -> Dict[str, Tensor]:
    """Every compared output of ``model`` on the IO inputs, computed in ``dtype``.

    Args:
        model (nn.Module): From :func:`build_reference_model`, cast to ``dtype``.
        io (dict): The IO file's contents (its inputs are used).
        dtype (torch.dtype): The precision of the run.

    Returns:
        dict[str, Tensor]: ``fused``, ``logits``, ``backbone_outs[i]``, ``dice_loss``,
        ``fusion_loss_raw`` and ``fusion_loss_weighted``.
    """
    from mmrisfusion.registry import MODELS
    vis, ir, text_feats = (io[k].to(dtype) for k in ('vis', 'ir', 'text_feats'))
    fused, feats, logits = model.forward_with_text_feats(vis, ir, text_feats, io['text_mask'])
    if len(feats) != len(io['backbone_outs']):
        raise ValueError(f'the backbone gives {len(feats)} maps, the reference '
                         f'{len(io["backbone_outs"])}')
    weighted = sum(model.loss_fusion(fused, vis, ir).values())
    outputs = dict(fused=fused, logits=logits)
    outputs.update((f'backbone_outs[{i}]', feat) for i, feat in enumerate(feats))
    outputs['dice_loss'] = MODELS.build(PUBLISHED_SEG_LOSS)(logits, io['target'])
    outputs['fusion_loss_raw'] = weighted / PUBLISHED_LAMBDA
    outputs['fusion_loss_weighted'] = weighted
    return outputs


def _reference(io: dict, name: str) -> Tensor:
    """The IO file's value of an output name (``backbone_outs[i]`` indexes the list)."""
    if name.startswith('backbone_outs['):
        return io['backbone_outs'][int(name[len('backbone_outs['):-1])]
    return io[name]


@torch.no_grad()
def compare(model: torch.nn.Module, io: dict) -> List[Tuple[str, float, float]]:
    """Run the model on the IO inputs and measure every difference to the IO outputs.

    Besides the difference, the float32 rounding noise of each output is measured as the
    difference between the model run in float32 and in float64: LAVT's instance norms
    subtract per-channel means from values whose spread is far smaller than the mean, so
    the backbone maps amplify rounding (a 1e-7 relative change of the input image moves
    them by about 1e-3, as does running the published code with another thread count).
    The published outputs carry that same noise.

    Args:
        model (nn.Module): From :func:`build_reference_model`.
        io (dict): The IO file's contents.

    Returns:
        list[tuple[str, float, float]]: ``(output name, max abs difference to the
        reference, max abs float32 rounding noise)``.
    """
    ours = model_outputs(model, io, torch.float32)
    diffs = {name: _max_abs_diff(name, value, _reference(io, name))
             for name, value in ours.items()}
    exact = model_outputs(copy.deepcopy(model).double(), io, torch.float64)
    return [(name, diffs[name], _max_abs_diff(name, value, exact[name]))
            for name, value in ours.items()]


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Compare a converted official RIS-FUSION checkpoint with the published '
        'outputs of an IO file')
    parser.add_argument('checkpoint', help='official checkpoint (model + prefusion_model)')
    parser.add_argument('io_file', help='IO file: inputs and published outputs (tensors only)')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='allowed absolute difference beyond the float32 rounding noise '
                        '(default: 1e-4)')
    parser.add_argument('--strict', action='store_true',
                        help='allow only --tolerance, ignoring the measured float32 noise '
                        '(fails on ill-conditioned outputs such as the LAVT backbone maps)')
    return parser.parse_args(argv)


def report(rows: List[Tuple[str, float, float]], tolerance: float = 1e-4,
           strict: bool = False) -> List[str]:
    """Print the comparison table and return the outputs that do not match.

    Args:
        rows (list[tuple[str, float, float]]): From :func:`compare`.
        tolerance (float): Allowed difference beyond the rounding noise. Defaults to 1e-4.
        strict (bool): Allow only ``tolerance``, ignoring the noise. Defaults to False.

    Returns:
        list[str]: Names of the outputs whose difference exceeds what is allowed.
    """
    width = max(len(name) for name, _, _ in rows)
    print(f'{"output":<{width}}  max abs diff  float32 noise  allowed')
    failed = []
    for name, diff, noise in rows:
        allowed = tolerance + (0.0 if strict else NOISE_FACTOR * noise)
        ok = diff <= allowed
        print(f'{name:<{width}}  {diff:12.3e}  {noise:13.3e}  {allowed:7.1e}  '
              f'{"ok" if ok else "FAIL"}')
        if not ok:
            failed.append(name)
    return failed


def main(argv: Optional[list] = None) -> int:
    """Print the differences; return 1 when one exceeds what is allowed."""
    args = parse_args(argv)
    init_default_scope('mmrisfusion')
    checkpoint = load_weights_only(args.checkpoint, extra_types=[argparse.Namespace])
    io = _load_io(args.io_file)
    failed = report(compare(build_reference_model(checkpoint), io), args.tolerance,
                    args.strict)
    if failed:
        print(f'FAILED: {", ".join(failed)}')
        return 1
    print('all outputs match the reference')
    return 0


if __name__ == '__main__':
    sys.exit(main())
