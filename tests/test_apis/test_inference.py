"""init_model / inference_model on a real TNO pair with the tiny RIS-FUSION, and the demo."""
import runpy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from safetensors.torch import save_file

from mmrisfusion.apis import (
    PairInferencer,
    RISResult,
    inference_model,
    init_model,
    load_model_checkpoint,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT = 'the warm person on the left'


class NotAWeight:
    """A class a malicious checkpoint could smuggle in; weights-only loading must refuse it."""


@pytest.fixture(scope='module')
def pair(data_dir):
    tno = data_dir / 'ivif' / 'tno'
    vis, ir = tno / 'vi' / '20.png', tno / 'ir' / '20.png'  # 270 x 360: not square
    assert vis.is_file() and ir.is_file(), f'missing the TNO pair in {tno}'
    return vis, ir


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory, tiny_ris_config_file):
    """A random tiny model saved as an mmengine .pth and as .safetensors."""
    torch.manual_seed(0)
    model = init_model(tiny_ris_config_file)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    root = tmp_path_factory.mktemp('ckpt')
    pth = root / 'tiny.pth'
    torch.save(dict(meta=dict(dataset_meta=dict(classes=('background', 'object'))),
                    state_dict={f'module.{k}': v for k, v in state.items()}), pth)
    safetensors = root / 'tiny.safetensors'
    save_file({k: v.contiguous() for k, v in state.items()}, str(safetensors))
    return state, pth, safetensors


@pytest.mark.parametrize('kind', ['pth', 'safetensors'])
def test_init_model_loads_weights(checkpoints, kind, tiny_ris_config_file):
    state, pth, safetensors = checkpoints
    torch.manual_seed(123)  # a different random init, overwritten by the checkpoint
    model = init_model(tiny_ris_config_file, str(pth if kind == 'pth' else safetensors))
    assert not model.training
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    if kind == 'pth':
        assert model.dataset_meta['classes'] == ('background', 'object')


def test_checkpoint_errors(checkpoints, tmp_path, tiny_ris_config_file):
    state, _, _ = checkpoints
    model = init_model(tiny_ris_config_file)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_model_checkpoint(model, tmp_path / 'missing.pth')
    partial = tmp_path / 'partial.pth'
    dropped = [k for k in state if k.endswith('.weight')][:3]
    torch.save({k: v for k, v in state.items() if k not in dropped}, partial)
    with pytest.raises(RuntimeError, match=r'partial.pth does not match.*3 missing keys'):
        load_model_checkpoint(model, partial)
    resized = tmp_path / 'resized.pth'
    key = next(k for k in state if k.endswith('.weight') and state[k].dim() == 2)
    torch.save(dict(state, **{key: state[key][:, :1].clone()}), resized)
    with pytest.raises(RuntimeError, match=rf'resized.pth does not match the model .*size '
                       rf'mismatch for {key}'):
        load_model_checkpoint(model, resized)
    official = tmp_path / 'official.pth'
    torch.save(dict(model={}, prefusion_model={}, epoch=1), official)
    with pytest.raises(ValueError, match='risfusion_official.py'):
        load_model_checkpoint(model, official)
    pickled = tmp_path / 'pickled.pth'
    torch.save(dict(state_dict=state, extra=NotAWeight()), pickled)
    with pytest.raises(RuntimeError, match='weights only'):
        load_model_checkpoint(model, pickled)


@pytest.fixture(scope='module')
def model(checkpoints, tiny_ris_config_file):
    return init_model(tiny_ris_config_file, str(checkpoints[2]))


def test_inference_on_tno_pair(model, pair):
    vis_path, ir_path = pair
    height, width = cv2.imread(str(vis_path)).shape[:2]
    result = inference_model(model, vis_path, ir_path, TEXT)
    assert isinstance(result, RISResult)
    assert result.mask.shape == (height, width) and result.mask.dtype == np.bool_
    assert result.logits.shape == (2, height, width)
    assert np.array_equal(result.mask, result.logits.argmax(0).numpy() > 0)
    assert result.fused.dtype == np.uint8 and result.fused.shape == (height, width, 3)
    # The network ran at the tiny config's 64x64.
    assert tuple(result.data_sample.pred_fused.data.shape) == (3, 64, 64)
    assert result.data_sample.text == TEXT

    # Arrays (RGB VIS, gray IR) go through the same loading as files: identical outputs.
    vis = cv2.cvtColor(cv2.imread(str(vis_path)), cv2.COLOR_BGR2RGB)
    ir = cv2.imread(str(ir_path), cv2.IMREAD_GRAYSCALE)
    from_arrays = inference_model(model, vis, ir, TEXT)
    assert np.array_equal(from_arrays.fused, result.fused)
    torch.testing.assert_close(from_arrays.logits, result.logits)

    # A list gives a list; the expression changes the output (the text is used).
    batch = inference_model(model, [vis_path, vis_path], [ir_path, ir_path],
                            [TEXT, 'the car on the right'])
    assert isinstance(batch, list) and len(batch) == 2
    # Batched kernels round differently and LAVT's instance norms amplify float32 rounding
    # (tools/analysis_tools/check_reference.py): a few 1e-4 on the logits.
    torch.testing.assert_close(batch[0].logits, result.logits, rtol=1e-3, atol=1e-3)
    assert not torch.allclose(batch[0].logits, batch[1].logits)


def test_pair_inferencer_loads_the_pair_once(model, pair, monkeypatch):
    from mmrisfusion.datasets.transforms import LoadRISImages
    loads = []
    original = LoadRISImages.transform
    monkeypatch.setattr(LoadRISImages, 'transform',
                        lambda self, results: loads.append(1) or original(self, results))
    vis_path, ir_path = pair
    session = PairInferencer(model, vis_path, ir_path)
    assert session.ori_shape == cv2.imread(str(vis_path)).shape[:2]
    first, second = session(TEXT), session('the car on the right')
    assert len(loads) == 1  # decoded once, asked twice
    for expression, result in ((TEXT, first), ('the car on the right', second)):
        expected = inference_model(model, vis_path, ir_path, expression)
        assert np.array_equal(result.fused, expected.fused)
        torch.testing.assert_close(result.logits, expected.logits)
        assert result.data_sample.text == expression
    assert not torch.allclose(first.logits, second.logits)


def test_inference_in_bfloat16(model, pair):
    """amp=True on the CPU: the network runs in bfloat16 autocast and the results come back
    in float32, at the same sizes. (How close bf16 gets to float32 is a property of the
    trained weights, measured in docs/benchmarks.md, not of this random model.)"""
    vis_path, ir_path = pair
    dtypes = set()
    handle = model.backbone.stages[0].blocks[0].register_forward_hook(
        lambda module, args, out: dtypes.add(out.dtype) and None)
    try:
        result = inference_model(model, vis_path, ir_path, TEXT, amp=True)
    finally:
        handle.remove()
    assert dtypes == {torch.bfloat16}
    reference = inference_model(model, vis_path, ir_path, TEXT)
    assert result.logits.dtype == torch.float32 and torch.isfinite(result.logits).all()
    assert result.logits.shape == reference.logits.shape
    assert result.fused.shape == reference.fused.shape and result.fused.dtype == np.uint8


def test_inference_on_an_image_three_pixels_wide(model, pair):
    """The fused image is (H, W, 3) whatever H and W: a (3, 7, 3) tensor is read as its
    channels first, not as 3 rows of 7 pixels."""
    vis = cv2.resize(cv2.cvtColor(cv2.imread(str(pair[0])), cv2.COLOR_BGR2RGB), (3, 7))
    ir = cv2.resize(cv2.imread(str(pair[1]), cv2.IMREAD_GRAYSCALE), (3, 7))
    result = inference_model(model, vis, ir, TEXT)
    assert result.fused.shape == (7, 3, 3) and result.mask.shape == (7, 3)
    fused = torch.nn.functional.interpolate(result.data_sample.pred_fused.data[None],
                                            size=(7, 3), mode='bilinear')[0]
    expected = (fused.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(result.fused, expected)


def test_inference_input_errors(model, pair):
    vis_path, ir_path = pair
    with pytest.raises(ValueError, match='pair up'):
        inference_model(model, [vis_path, vis_path], [ir_path], TEXT)
    with pytest.raises(FileNotFoundError, match='nope.png'):
        inference_model(model, 'nope.png', ir_path, TEXT)
    with pytest.raises(ValueError, match='uint8'):
        inference_model(model, np.zeros((8, 8, 3), np.float32), ir_path, TEXT)


def test_image_demo(checkpoints, pair, tmp_path, monkeypatch, tiny_ris_config_file):
    vis_path, ir_path = pair
    out = tmp_path / 'demo'
    monkeypatch.setattr(sys, 'argv', [
        'image_demo.py', str(vis_path), str(ir_path), TEXT, tiny_ris_config_file,
        str(checkpoints[1]), '--out', str(out)])
    runpy.run_path(str(REPO_ROOT / 'demo' / 'image_demo.py'), run_name='__main__')
    assert sorted(p.name for p in out.iterdir()) == [
        'fused.png', 'mask.png', 'overlay.png', 'panel.png']
    mask = cv2.imread(str(out / 'mask.png'), cv2.IMREAD_UNCHANGED)
    assert mask.shape == cv2.imread(str(vis_path)).shape[:2]
    assert set(np.unique(mask)) <= {0, 255}


def test_pipeline_of_wrapped_test_dataset():
    from mmrisfusion.apis.inference import _pipeline_config
    inner = [dict(type='LoadRISImages'), dict(type='PackRISInputs')]
    wrapped = Config(dict(
        test_pipeline=[dict(type='Stale')],
        test_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
            dict(type='MMRISDataset', pipeline=inner),
            dict(type='MismatchedTextDataset', dataset=dict(type='MMRISDataset',
                                                            pipeline=[]))]))))
    assert _pipeline_config(wrapped) == inner
    assert _pipeline_config(Config(dict(test_pipeline=inner))) == inner
    with pytest.raises(KeyError, match='test_pipeline'):
        _pipeline_config(Config(dict(test_dataloader=dict(dataset=dict(type='X')))))
