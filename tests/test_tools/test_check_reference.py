"""tools/analysis_tools/check_reference.py on the tiny references: it passes, and it can fail."""
import contextlib
import importlib.util
import io as std_io
from pathlib import Path

import pytest
import torch
from mmengine.registry import init_default_scope

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def check_reference():
    spec = importlib.util.spec_from_file_location(
        'check_reference', REPO_ROOT / 'tools' / 'analysis_tools' / 'check_reference.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main(check_reference, checkpoint_path, io_path):
    """One run of the tool: exit status and printed table."""
    out = std_io.StringIO()
    with contextlib.redirect_stdout(out):
        status = check_reference.main([str(checkpoint_path), str(io_path)])
    return status, out.getvalue()


@pytest.fixture(scope='module')
def run(check_reference, tiny_reference):
    """One run of the tool on each tiny reference."""
    return _main(check_reference, tiny_reference.checkpoint_path, tiny_reference.io_path)


def _rows(output):
    """(name, diff, noise) of every line of the printed table."""
    rows = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[4] in ('ok', 'FAIL'):
            rows.append((fields[0], float(fields[1]), float(fields[2])))
    return rows


def test_matches_reference_outputs(run):
    """The acceptance test: every reference output matches (1e-4 beyond float32 noise)."""
    status, out = run
    assert status == 0, out
    rows = dict((name, (diff, noise)) for name, diff, noise in _rows(out))
    assert set(rows) == {'fused', 'logits', 'backbone_outs[0]', 'backbone_outs[1]',
                         'backbone_outs[2]', 'backbone_outs[3]', 'dice_loss',
                         'fusion_loss_raw', 'fusion_loss_weighted'}
    # Well-conditioned outputs meet 1e-4 outright; the backbone maps carry float32 noise
    # of about 1e-3, which the published outputs share.
    for name in ('fused', 'logits', 'dice_loss', 'fusion_loss_raw', 'fusion_loss_weighted'):
        assert rows[name][0] <= 1e-4, name
    for name in ('backbone_outs[1]', 'backbone_outs[3]'):
        assert rows[name][1] < 5e-3, name


def test_derived_reference_holds_our_float64_outputs(check_reference, derived_reference):
    """Stricter than the tool's bar where the reference is our own float64 run.

    The derived outputs are our float64 outputs stored as float32, so our float32 run differs
    from them by its float32 rounding noise alone, give or take their storage rounding (below
    3e-7 for values under 5): any change of the implementation beyond 1e-6 fails here, also
    in the backbone maps whose noise (1e-3) the tool must allow for.
    """
    init_default_scope('mmrisfusion')
    model = check_reference.build_reference_model(derived_reference.checkpoint)
    for name, diff, noise in check_reference.compare(model, derived_reference.io):
        assert abs(diff - noise) <= 1e-6, (name, diff, noise)


def test_strict_mode_and_failures(check_reference, capsys):
    """Noise widens the bar except with --strict; a difference beyond it fails."""
    rows = [('fused', 0.0, 1e-6), ('backbone_outs[0]', 6e-4, 1e-3),
            ('backbone_outs[1]', 5e-5, 4e-4)]
    assert check_reference.report(rows, 1e-4) == []
    assert check_reference.report(rows, 1e-4, strict=True) == ['backbone_outs[0]']
    wrong = [(name, diff + 1e-2 if name == 'backbone_outs[1]' else diff, noise)
             for name, diff, noise in rows]
    assert check_reference.report(wrong, 1e-4) == ['backbone_outs[1]']
    assert 'FAIL' in capsys.readouterr().out


def test_a_wrong_weight_fails(check_reference, tiny_reference, tmp_path):
    """One patch-merging weight off by 1% is far outside the bar: the check can fail."""
    key = 'backbone.layers.1.downsample.reduction.weight'
    model = dict(tiny_reference.checkpoint['model'])
    model[key] = model[key] * 1.01
    torch.save(dict(tiny_reference.checkpoint, model=model), tmp_path / 'wrong.pth')
    status, out = _main(check_reference, tmp_path / 'wrong.pth', tiny_reference.io_path)
    assert status == 1, out
    failed = [line.split()[0] for line in out.splitlines() if line.endswith('FAIL')]
    # The stages after the changed patch merging fail, those before it do not.
    assert failed == ['backbone_outs[2]', 'backbone_outs[3]'], out


def test_names_a_missing_io_entry(check_reference, derived_reference, tmp_path):
    io = dict(derived_reference.io)
    del io['dice_loss']
    torch.save(io, tmp_path / 'io.pt')
    with pytest.raises(KeyError, match='dice_loss'):
        check_reference.main([str(derived_reference.checkpoint_path), str(tmp_path / 'io.pt')])


def test_names_a_wrong_output_shape(check_reference, derived_reference, tmp_path):
    io = dict(derived_reference.io, logits=derived_reference.io['logits'][:, :, :100])
    torch.save(io, tmp_path / 'io.pt')
    with pytest.raises(ValueError, match='logits'):
        check_reference.main([str(derived_reference.checkpoint_path), str(tmp_path / 'io.pt')])
