"""ONNX export of the tiny RIS-FUSION: the tool, ONNX Runtime equality, the torch-free demo."""
import contextlib
import copy
import io
import json
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from torch import nn

from mmrisfusion.apis import inference_model, inference_pipeline, init_model
from mmrisfusion.datasets.transforms import TokenizeText
from mmrisfusion.deployment import (
    OUTPUT_NAMES,
    RISFusionForExport,
    UnsupportedConfigError,
    example_inputs,
    float32_noise,
    max_abs_diff,
    onnx_session,
    preprocessing_spec,
)

pytest.importorskip('onnxruntime', reason='the ONNX tests need pip install -e ".[deploy]"')
pytest.importorskip('onnxscript', reason='the ONNX tests need pip install -e ".[deploy]"')

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT = 'the warm person on the left'


@pytest.fixture(scope='module')
def onnx_demo(load_repo_script):
    return load_repo_script('demo/onnx_demo.py')


@pytest.fixture(scope='module')
def pair(data_dir):
    tno = data_dir / 'ivif' / 'tno'
    return str(tno / 'vi' / '20.png'), str(tno / 'ir' / '20.png')  # 360 x 270: not square


@pytest.fixture(scope='module')
def model(tiny_ris_config_file, tiny_ris_checkpoint):
    return init_model(tiny_ris_config_file, tiny_ris_checkpoint)


@pytest.fixture(scope='module')
def exported(tmp_path_factory, tiny_ris_config_file, tiny_ris_checkpoint):
    """One run of tools/deployment/pytorch2onnx.py: the .onnx file and what it printed."""
    out = tmp_path_factory.mktemp('onnx') / 'tiny.onnx'
    printed = io.StringIO()
    argv = ['pytorch2onnx.py', tiny_ris_config_file, tiny_ris_checkpoint, '--shape', '64',
            '64', '--out', str(out)]
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(sys, 'argv', argv)
        runpy.run_path(str(REPO_ROOT / 'tools' / 'deployment' / 'pytorch2onnx.py'),
                       run_name='__main__')
    return out, printed.getvalue()


def test_export_tool_writes_the_model_and_checks_it(exported):
    onnx_file, printed = exported
    assert 'max abs difference ONNX Runtime vs PyTorch: seg_logits' in printed
    assert '(tolerance 0.0001): OK' in printed, printed
    meta = json.loads(onnx_file.with_suffix('.json').read_text())
    assert meta['check']['passed'] and meta['check']['tolerance'] == 1e-4
    assert set(meta['check']['max_abs_diff']) == set(OUTPUT_NAMES)
    assert all(0 <= diff <= 1e-4 for diff in meta['check']['max_abs_diff'].values())
    assert set(meta['check']['float32_noise']) == set(OUTPUT_NAMES)
    assert 'PyTorch float32 vs float64' in printed
    assert meta['preprocess']['input_size'] == [64, 64]
    assert (onnx_file.parent / meta['text']['tokenizer']).is_file()
    session = onnx_session(str(onnx_file))
    assert {i.name: i.shape for i in session.get_inputs()} == {
        name: spec['shape'] for name, spec in meta['inputs'].items()}
    assert {o.name: o.shape for o in session.get_outputs()} == {
        name: spec['shape'] for name, spec in meta['outputs'].items()}


def pipeline_inputs(model, vis, ir, text):
    """The graph's inputs as PyTorch computes them: the test pipeline and the preprocessor."""
    results = dict(img_name='pair', sample_idx=0, source='test', seg_fields=[], vis_path=vis,
                   ir_path=ir, text=text)
    sample = Compose(inference_pipeline(model.cfg))(results)
    inputs = model.data_preprocessor(pseudo_collate([sample]))['inputs']
    return tuple(inputs[name] for name in ('token_ids', 'token_mask', 'vis', 'ir'))


def test_onnx_runtime_equals_pytorch_on_a_real_pair(exported, model, pair):
    """On the TNO pair the flat sky makes LAVT's instance norms amplify rounding: float32
    PyTorch is itself ~7e-4 from float64 there. ONNX Runtime must be within the tolerance
    plus twice that noise (as tools/analysis_tools/check_reference.py)."""
    args = pipeline_inputs(model, *pair, TEXT)
    module = RISFusionForExport(model).eval()
    diffs = max_abs_diff(onnx_session(str(exported[0])), module, [args])
    noise = float32_noise(module, [args])
    for name in OUTPUT_NAMES:
        assert diffs[name] <= 1e-4 + 2 * noise[name], (name, diffs, noise)


def test_the_check_fails_on_a_different_model(exported, model):
    """max_abs_diff compares for real: a perturbed copy of the weights shows."""
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        perturbed.decode_head.conv_seg.weight.mul_(1.01)
    spec = preprocessing_spec(model)
    diffs = max_abs_diff(onnx_session(str(exported[0])), RISFusionForExport(perturbed).eval(),
                         [example_inputs(model, spec, TEXT, seed=7)])
    assert diffs['seg_logits'] > 1e-4 and diffs['fused'] <= 1e-4


def test_demo_preprocessing_is_the_pipeline(exported, model, pair, onnx_demo):
    runtime = onnx_demo.ONNXRISFusion(str(exported[0]))
    expected = pipeline_inputs(model, *pair, TEXT)
    vis, ir = runtime.preprocess(*runtime.load_pair(*pair))
    np.testing.assert_array_equal(vis, expected[2].numpy())
    np.testing.assert_array_equal(ir, expected[3].numpy())
    tokenize = TokenizeText(preprocessing_spec(model)['text']['tokenizer_path'], max_length=20)
    for text in (TEXT, 'The RED car, to the LEFT of the bike!', 'ünïcode wörds',
                 'a very long expression about the second warm dog from the right of the big '
                 'tree that goes on well past twenty tokens'):
        ids, mask = runtime.tokenize(text)
        tokens = tokenize(dict(text=text))
        np.testing.assert_array_equal(ids[0], tokens['token_ids'])
        np.testing.assert_array_equal(mask[0], tokens['token_mask'])
    with pytest.raises(ValueError, match='empty'):
        runtime.tokenize('  ')


@pytest.mark.parametrize('align_corners', [True, False])
def test_demo_bilinear_resize_is_pytorchs(onnx_demo, align_corners):
    array = torch.randn(2, 16, 24)
    for size in ((270, 360), (7, 50)):
        expected = torch.nn.functional.interpolate(array[None], size=size, mode='bilinear',
                                                   align_corners=align_corners)[0]
        got = onnx_demo.resize_bilinear(array.numpy(), size, align_corners)
        # PyTorch computes the source coordinates in float32, the demo in float64.
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)


def test_demo_runs_without_torch_and_matches_pytorch(exported, model, pair, tmp_path):
    """demo/onnx_demo.py with `import torch` made impossible, then its outputs against
    inference_model's."""
    out = tmp_path / 'out'
    code = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    proc = subprocess.run(
        [sys.executable, '-c', code, str(REPO_ROOT / 'demo' / 'onnx_demo.py'),
         str(exported[0]), *pair, TEXT, '--out', str(out), '--threads', '1'],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert 'wrote fused.png, mask.png, overlay.png' in proc.stdout
    expected = inference_model(model, *pair, TEXT)
    fused = cv2.cvtColor(cv2.imread(str(out / 'fused.png')), cv2.COLOR_BGR2RGB)
    mask = cv2.imread(str(out / 'mask.png'), cv2.IMREAD_GRAYSCALE) > 0
    assert np.abs(fused.astype(int) - expected.fused).max() <= 1
    # Logits within 1e-4 before resizing; a pixel may flip only where they tie.
    assert (mask != expected.mask).mean() < 1e-3
    assert (out / 'overlay.png').is_file()


def _with_test_pipeline(model, pipeline):
    """A shallow copy of the model whose config has another test pipeline."""
    edited = copy.copy(model)
    edited.cfg = copy.deepcopy(model.cfg)  # a plain attribute: the original keeps its own
    edited.cfg.test_dataloader.dataset.pipeline = pipeline
    return edited


def test_unsupported_configs_are_named(model, monkeypatch):
    steps = inference_pipeline(model.cfg)
    resize_at = next(k for k, s in enumerate(steps) if s['type'] == 'RISResize')
    keep_ratio = copy.deepcopy(steps)
    keep_ratio[resize_at]['keep_ratio'] = True
    with pytest.raises(UnsupportedConfigError, match=r"'keep_ratio': True.*fixed input size"):
        preprocessing_spec(_with_test_pipeline(model, keep_ratio))
    pad = copy.deepcopy(steps)
    pad[resize_at] = dict(type='RISResizePad', scale=(64, 64))
    with pytest.raises(UnsupportedConfigError, match='RISResizePad'):
        preprocessing_spec(_with_test_pipeline(model, pad))
    no_resize = [s for s in steps if s['type'] != 'RISResize']
    with pytest.raises(UnsupportedConfigError, match=r"lacks \['RISResize'\]"):
        preprocessing_spec(_with_test_pipeline(model, no_resize))
    with pytest.raises(UnsupportedConfigError, match='at least 32x32'):
        preprocessing_spec(model, (16, 64))
    fusion_only = nn.Module()
    fusion_only.cfg = model.cfg
    with pytest.raises(UnsupportedConfigError, match='RIS-FUSION models'):
        preprocessing_spec(fusion_only)
    assert preprocessing_spec(model)['preprocess']['input_size'] == [64, 64]
    monkeypatch.setattr(model.data_preprocessor, 'size_divisor', 48)
    with pytest.raises(UnsupportedConfigError, match='pads 64x64'):
        preprocessing_spec(model)


def test_export_tool_refuses_an_unsupported_config(tmp_path, tiny_ris_config_file,
                                                    tiny_ris_checkpoint, monkeypatch):
    cfg = Config.fromfile(tiny_ris_config_file)
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'RISResize':
            step['keep_ratio'] = True
    config = tmp_path / 'keep_ratio.py'
    cfg.dump(str(config))
    monkeypatch.setattr(sys, 'argv', ['pytorch2onnx.py', str(config), tiny_ris_checkpoint,
                                      '--out', str(tmp_path / 'x.onnx')])
    with pytest.raises(SystemExit, match='cannot export: .*keep_ratio'):
        runpy.run_path(str(REPO_ROOT / 'tools' / 'deployment' / 'pytorch2onnx.py'),
                       run_name='__main__')
    assert not (tmp_path / 'x.onnx').exists()


def test_benchmark_times_both_runtimes(exported, model, pair, tmp_path, load_repo_script):
    benchmark = load_repo_script('tools/analysis_tools/benchmark.py')
    results = dict(img_name='pair', sample_idx=0, source='test', seg_fields=[],
                   vis_path=pair[0], ir_path=pair[1], text=TEXT)
    batch = pseudo_collate([Compose(inference_pipeline(model.cfg))(results)])
    report = benchmark.onnx_vs_pytorch(model, batch, iters=2, warmup=1,
                                       onnx_file=str(exported[0]))
    for runtime in ('pytorch', 'onnxruntime'):
        assert 0 < report[runtime]['min_ms'] <= report[runtime]['mean_ms']
    assert report['speedup'] == pytest.approx(
        report['pytorch']['mean_ms'] / report['onnxruntime']['mean_ms'])
    assert report['threads'] == torch.get_num_threads()
    for name in OUTPUT_NAMES:  # within PyTorch's own float32 noise (see above)
        assert report['max_abs_diff'][name] <= 1e-4 + 2 * report['float32_noise'][name]
    other = tmp_path / 'other.onnx'
    other.symlink_to(exported[0])
    meta = json.loads(exported[0].with_suffix('.json').read_text())
    meta['preprocess']['input_size'] = [32, 32]
    other.with_suffix('.json').write_text(json.dumps(meta))
    with pytest.raises(SystemExit, match=r'takes \[32, 32\] inputs, the test sample is'):
        benchmark.onnx_vs_pytorch(model, batch, iters=1, warmup=0, onnx_file=str(other))
