"""Make ``tests/data`` from the published reference outputs and the IVIF benchmark pairs.

Usage (from the repository root, with mmrisfusion importable)::

    python tests/data/make_test_data.py REFERENCE_DIR IVIF_DIR [--out tests/data]

``REFERENCE_DIR`` holds ``risfusion/`` (``official_tiny.pth``, ``io_tiny.pt``,
``keys_swin-b.json``: the published RIS-FUSION code run on a tiny random model),
``fusion_metrics/`` (``tno_reference.json``, ``tno_mean/``, ``tno_max/``: the published
evaluator's values) and ``ldfusion/`` (the published LDFusion code run on its network with
random weights; of it only the key layout is kept, after checking our implementation against
it). ``IVIF_DIR`` holds the benchmark pairs as ``<dataset>/vi/<name>`` and
``<dataset>/ir/<name>``: ``tno/``, ``roadscene/`` (with ``test50.txt``) and
``msrs_samples/``.

What it writes and why: ``tests/data/README.md``. The derived RIS-FUSION reference is written
only after our implementation has reproduced the published outputs on the full reference
(``tools/analysis_tools/check_reference.py`` and each published fusion term); the script stops
with status 1 otherwise.
"""
import argparse
import contextlib
import importlib.util
import io as std_io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from mmengine.registry import init_default_scope

from mmrisfusion.registry import MODELS
from mmrisfusion.utils.checkpoint import load_weights_only

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
#: Pairs kept per dataset: our folder name -> (source folder, file names).
PAIRS = {
    # the three smallest TNO pairs (256 x 256, two 270 x 360)
    'tno': ('tno', ('07.png', '19.png', '20.png')),
    # the first two names (LDFusion's tiny training run) and the first two of test50.txt
    'roadscene': ('roadscene', ('FLIR_00006.jpg', 'FLIR_00018.jpg', 'FLIR_00211.jpg',
                                'FLIR_00977.jpg')),
    # the smallest MSRS pair (a night scene)
    'msrs': ('msrs_samples', ('00020N.png', )),
}
#: RoadScene's published test split, trimmed to the kept pairs, under this name.
ROADSCENE_SPLIT = ('test50.txt', 'test_split.txt')
#: The published fusion-term names of the IO file and our term that computes each; the
#: 'pf_ssim_*' entries log SSIM itself, not the loss 1 - SSIM.
FUSION_TERMS = {'pf_ssim_vis': dict(type='SSIMLoss', source='vis'),
                'pf_ssim_ir': dict(type='SSIMLoss', source='ir'),
                'pf_mse_vis': dict(type='LumaMSELoss', source='vis'),
                'pf_mse_ir': dict(type='LumaMSELoss', source='ir'),
                'pf_sobel_vis': dict(type='SobelL1Loss', source='vis'),
                'pf_sobel_ir': dict(type='SobelL1Loss', source='ir'),
                'pf_grad': dict(type='JointGradientLoss')}
#: How far our float32 fusion terms may be from the published ones (the published float32
#: SSIM is itself 1.3e-5 from its float64 value; tests/test_models/test_losses).
TERM_TOLERANCE = dict(ssim=5e-5, other=1e-5)


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny_reference = _load_module('tiny_reference', HERE / 'tiny_reference.py')
check_reference = _load_module(
    'check_reference', REPO_ROOT / 'tools' / 'analysis_tools' / 'check_reference.py')


def copy_pairs(ivif_dir: Path, out: Path) -> None:
    """Copy the kept pairs byte for byte, and RoadScene's split trimmed to them."""
    for dataset, (source, names) in PAIRS.items():
        for modality in ('vi', 'ir'):
            (out / dataset / modality).mkdir(parents=True, exist_ok=True)
            for name in names:
                shutil.copyfile(ivif_dir / source / modality / name,
                                out / dataset / modality / name)
    split, trimmed = ROADSCENE_SPLIT
    kept = set(PAIRS['roadscene'][1])
    lines = (ivif_dir / PAIRS['roadscene'][0] / split).read_text().split()
    names = [name for name in lines if name in kept]
    if len(names) < 2:
        raise SystemExit(f'keep at least two names of {split}; kept {names}')
    (out / 'roadscene' / trimmed).write_text(''.join(f'{name}\n' for name in names))


def trim_fusion_metrics(source: Path, out: Path) -> None:
    """The published evaluator's values and fused images of the kept TNO pairs only."""
    names = PAIRS['tno'][1]
    reference = json.loads((source / 'tno_reference.json').read_text())
    for method in reference['images']:
        (out / method).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(source / method / name, out / method / name)
        reference['images'][method] = {name: reference['images'][method][name]
                                       for name in names}
    # The means and timings are over all 25 pairs; they do not describe the kept ones.
    del reference['means'], reference['reference_seconds']
    reference['trimmed'] = (f'the published values of {len(names)} of the 25 TNO pairs '
                            '(tests/data/make_test_data.py)')
    (out / 'tno_reference.json').write_text(json.dumps(reference, indent=1) + '\n')


def _check(*argv) -> str:
    """Run tools/analysis_tools/check_reference.py; its table, or exit when it fails."""
    out = std_io.StringIO()
    with contextlib.redirect_stdout(out):
        status = check_reference.main([str(arg) for arg in argv])
    print(out.getvalue(), end='')
    if status != 0:
        raise SystemExit(f'check_reference.py fails on {argv}: not writing a reference '
                         'derived from an implementation that does not match')
    return out.getvalue()


def fusion_terms(model: torch.nn.Module, io: dict, fused: torch.Tensor,
                 dtype: torch.dtype) -> dict:
    """Every published fusion term (``FUSION_TERMS``) of ``fused``, computed in ``dtype``."""
    vis, ir = io['vis'].to(dtype), io['ir'].to(dtype)
    lumas = model.fusion_lumas(fused.to(dtype), vis, ir)
    terms = {}
    for name, cfg in FUSION_TERMS.items():
        term = MODELS.build(cfg).to(dtype)
        if name.startswith('pf_ssim'):
            ref = lumas[1] if cfg['source'] == 'vis' else lumas[2]
            terms[name] = term.ssim(lumas[0], ref)
        else:
            terms[name] = term(*lumas)
    return terms


def _check_terms(model: torch.nn.Module, io: dict) -> None:
    """Our float32 terms on the published fused image equal the published terms."""
    ours = fusion_terms(model, io, io['fused'], torch.float32)
    for name, value in ours.items():
        diff = abs(value.item() - float(io['fusion_loss_terms'][name]))
        bar = TERM_TOLERANCE['ssim' if 'ssim' in name else 'other']
        print(f'{name:<13} {diff:.3e} (allowed {bar:.0e})')
        if diff > bar:
            raise SystemExit(f'{name} differs from the published value by {diff:.3e}')


@torch.no_grad()
def derived_io(checkpoint: dict, io: dict) -> dict:
    """The published inputs with our float64 outputs on ``checkpoint``'s weights."""
    model = check_reference.build_reference_model(checkpoint).double()
    outputs = check_reference.model_outputs(model, io, torch.float64)
    derived = {key: io[key] for key in ('vis', 'ir', 'text_feats', 'text_mask', 'target')}
    derived.update(fused=outputs['fused'], logits=outputs['logits'],
                   backbone_outs=[outputs[f'backbone_outs[{i}]']
                                  for i in range(len(io['backbone_outs']))],
                   dice_loss=outputs['dice_loss'], fusion_loss_raw=outputs['fusion_loss_raw'],
                   fusion_loss_weighted=outputs['fusion_loss_weighted'])
    terms = fusion_terms(model, io, outputs['fused'], torch.float64)
    derived['fusion_loss_terms'] = dict(pf_total=outputs['fusion_loss_raw'], **terms)
    return {key: [v.float() for v in value] if isinstance(value, list) else
            {k: v.float() for k, v in value.items()} if isinstance(value, dict) else
            value.float() if value.is_floating_point() else value
            for key, value in derived.items()}


def make_risfusion(source: Path, out: Path) -> None:
    """Verify against the published reference, then write the derived one (README)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / 'keys_swin-b.json', out / 'keys_swin-b.json')
    print(f'== check_reference.py on the published reference in {source}')
    _check(source / 'official_tiny.pth', source / 'io_tiny.pt')
    checkpoint = load_weights_only(str(source / 'official_tiny.pth'),
                                   extra_types=[argparse.Namespace])
    io = load_weights_only(str(source / 'io_tiny.pt'))
    print('== our float32 fusion terms against the published ones')
    _check_terms(check_reference.build_reference_model(checkpoint), io)

    quantised = tiny_reference.quantise_checkpoint(checkpoint)
    tiny_reference.save_checkpoint(checkpoint, out / 'tiny_int8.safetensors')
    tiny_reference.save_io(derived_io(quantised, io), out / 'io_tiny.safetensors')
    rebuilt = tiny_reference.load_checkpoint(out / 'tiny_int8.safetensors')
    for part in tiny_reference.PARTS:
        assert all(torch.equal(rebuilt[part][k], v) for k, v in quantised[part].items())
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(rebuilt, Path(tmp) / 'official_tiny.pth')
        torch.save(tiny_reference.load_io(out / 'io_tiny.safetensors'), Path(tmp) / 'io.pt')
        print('== check_reference.py on the derived reference (our float32 run against the '
              'stored float64 outputs)')
        _check(Path(tmp) / 'official_tiny.pth', Path(tmp) / 'io.pt')


def make_ldfusion(source: Path, out: Path) -> None:
    """Check the published LDFusion reference, then keep its key layout (README)."""
    print(f'== check_reference.py --method ldfusion on the published reference in {source}')
    _check('--method', 'ldfusion', source)
    layout = json.loads((source / 'meta.json').read_text())['checkpoint_layout']
    lines = []
    for part, keys in (('Enc', layout['enc_keys']), ('Dec', layout['dec_keys'])):
        rows = [f'  "{key}": {json.dumps(shape)}' for key, shape in keys.items()]
        lines.append(f' "{part}": {{\n' + ',\n'.join(rows) + '\n }')
    out.mkdir(parents=True, exist_ok=True)
    (out / 'keys_official.json').write_text('{\n' + ',\n'.join(lines) + '\n}\n')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('reference_dir', type=Path,
                        help='the published reference (risfusion/, fusion_metrics/, ldfusion/)')
    parser.add_argument('ivif_dir', type=Path, help='the IVIF pairs (tno/, roadscene/, ...)')
    parser.add_argument('--out', type=Path, default=HERE, help='default: tests/data')
    args = parser.parse_args(argv)
    init_default_scope('mmrisfusion')
    copy_pairs(args.ivif_dir, args.out / 'ivif')
    trim_fusion_metrics(args.reference_dir / 'fusion_metrics', args.out / 'fusion_metrics')
    make_risfusion(args.reference_dir / 'risfusion', args.out / 'risfusion')
    make_ldfusion(args.reference_dir / 'ldfusion', args.out / 'ldfusion')
    return 0


if __name__ == '__main__':
    sys.exit(main())
