"""The visualisation hook draws a bounded number of panels; the saver writes every result."""
import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmengine.visualization import Visualizer

from mmrisfusion.engine.hooks import RISResultSaverHook, RISVisualizationHook
from mmrisfusion.registry import HOOKS
from mmrisfusion.structures import RISDataSample
from mmrisfusion.visualization import RISLocalVisualizer

SIZE = 16


def make_batch(start: int, count: int, with_text: bool = True) -> tuple:
    """A pseudo-collated batch (uint8 inputs) and its predicted samples."""
    inputs = dict(vis=[], ir=[])
    outputs = []
    for k in range(start, start + count):
        inputs['vis'].append(torch.full((3, SIZE, SIZE), 10 * k, dtype=torch.uint8))
        inputs['ir'].append(torch.full((1, SIZE, SIZE), 200, dtype=torch.uint8))
        sample = RISDataSample(metainfo=dict(img_name=f'img{k}.png', sample_idx=k))
        mask = torch.zeros(1, SIZE, SIZE, dtype=torch.long)
        mask[0, 2:10, 2:10] = 1
        sample.pred_sem_seg = PixelData(data=mask)
        sample.gt_sem_seg = PixelData(data=mask.flip(-1))
        sample.pred_fused = PixelData(data=torch.full((3, SIZE, SIZE), 0.5))
        if with_text:
            sample.text = f'object number {k}'
        outputs.append(sample)
    return dict(inputs=inputs, data_samples=outputs), outputs


def test_visualization_hook_draws_max_samples_per_evaluation(tmp_path):
    RISLocalVisualizer.get_instance('test_hook_visualizer', save_dir=str(tmp_path),
                                    vis_backends=[dict(type='LocalVisBackend')])
    hook = HOOKS.build(dict(type='RISVisualizationHook', max_samples=3))
    runner = SimpleNamespace(iter=7)
    image_dir = tmp_path / 'vis_data' / 'vis_image'
    hook.before_val_epoch(runner)
    for batch_idx in range(3):
        batch, outputs = make_batch(2 * batch_idx, 2)
        hook.after_val_iter(runner, batch_idx, batch, outputs)
    names = sorted(p.name for p in image_dir.iterdir())
    assert names == ['val_0_img0_7.png', 'val_1_img1_7.png', 'val_2_img2_7.png']
    panel = cv2.imread(str(image_dir / names[0]))
    assert panel.shape[1] == 5 * SIZE + 4 * 2  # VIS, IR, fused, prediction, GT

    # Training iterations and (by default) tests draw nothing; a new evaluation draws again.
    batch, outputs = make_batch(0, 2)
    hook.after_train_iter(runner, 0, batch, outputs)
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, batch, outputs)
    assert len(list(image_dir.iterdir())) == 3
    runner.iter = 9
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0, batch, outputs)
    assert (image_dir / 'val_1_img1_9.png').is_file()


def test_visualization_hook_needs_ris_visualizer():
    Visualizer.get_instance('test_hook_plain_visualizer')
    hook = RISVisualizationHook()
    batch, outputs = make_batch(0, 1)
    with pytest.raises(TypeError, match='RISLocalVisualizer'):
        hook.after_val_iter(SimpleNamespace(iter=0), 0, batch, outputs)
    with pytest.raises(ValueError, match='interval'):
        RISVisualizationHook(interval=0)


def test_result_saver_writes_every_sample(tmp_path):
    hook = HOOKS.build(dict(type='RISResultSaverHook', out_dir=str(tmp_path), progress=False))
    assert isinstance(hook, RISResultSaverHook)
    runner = SimpleNamespace(test_dataloader=SimpleNamespace(dataset=[None] * 3))
    hook.before_test_epoch(runner)
    for batch_idx, (start, count) in enumerate([(0, 2), (2, 1)]):
        batch, outputs = make_batch(start, count)
        hook.after_test_iter(runner, batch_idx, batch, outputs)
    hook.after_test_epoch(runner, {})
    for sub in ('fused', 'masks', 'overlays', 'gt_overlays'):
        assert sorted(p.name for p in (tmp_path / sub).iterdir()) == [
            'img0_0.png', 'img1_1.png', 'img2_2.png'], sub
    mask = cv2.imread(str(tmp_path / 'masks' / 'img1_1.png'), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert mask[5, 5] == 255 and mask[12, 12] == 0
    overlay = cv2.imread(str(tmp_path / 'overlays' / 'img1_1.png'))[..., ::-1]
    assert overlay[5, 5, 0] > overlay[5, 5, 1]  # red prediction
    gt_overlay = cv2.imread(str(tmp_path / 'gt_overlays' / 'img1_1.png'))[..., ::-1]
    assert gt_overlay[5, 12, 1] > gt_overlay[5, 12, 0]  # green GT (flipped mask)
    fused = cv2.imread(str(tmp_path / 'fused' / 'img0_0.png'))
    assert (fused == 128).all()
    records = json.loads((tmp_path / 'samples.json').read_text())
    assert [r['stem'] for r in records] == ['img0_0', 'img1_1', 'img2_2']
    assert records[2]['text'] == 'object number 2'


def test_result_saver_panels(tmp_path):
    hook = RISResultSaverHook(str(tmp_path), progress=False, panels=True)
    runner = SimpleNamespace(test_dataloader=SimpleNamespace(dataset=[None] * 2))
    hook.before_test_epoch(runner)
    batch, outputs = make_batch(0, 2)
    hook.after_test_iter(runner, 0, batch, outputs)
    panel = cv2.imread(str(tmp_path / 'panels' / 'img1_1.png'))[..., ::-1]
    # Five tiles (VIS, IR, fused, prediction, GT) side by side, a title strip above, the
    # expression below.
    assert panel.shape[1] == 5 * SIZE + 4 * 2 and panel.shape[0] > SIZE
    ir_column = panel[:, SIZE + 2 + SIZE // 2]  # the middle of the IR tile, top to bottom
    assert (ir_column == 200).all(axis=1).sum() == SIZE
    with pytest.raises(KeyError, match='panels need the VIS and IR inputs of img0_0'):
        hook.after_test_iter(runner, 0, dict(inputs={}, data_samples=outputs), outputs)
    assert not RISResultSaverHook(str(tmp_path / 'plain'), progress=False).panels


def test_result_saver_skips_mismatched_text_pass(tmp_path):
    hook = RISResultSaverHook(str(tmp_path), progress=False)
    runner = SimpleNamespace(test_dataloader=SimpleNamespace(dataset=[None] * 2))
    hook.before_test_epoch(runner)
    batch, outputs = make_batch(0, 2)
    outputs[1].set_metainfo(dict(text_permuted=True, sample_idx=0, img_name='img0.png'))
    outputs[1].pred_fused = PixelData(data=torch.zeros(3, SIZE, SIZE))
    hook.after_test_iter(runner, 0, batch, outputs)
    hook.after_test_epoch(runner, {})
    fused = cv2.imread(str(tmp_path / 'fused' / 'img0_0.png'))
    assert (fused == 128).all(), 'the mismatched-text pass must not overwrite the real result'
    assert len(json.loads((tmp_path / 'samples.json').read_text())) == 1


def test_result_saver_fusion_only_keeps_image_names(tmp_path):
    hook = RISResultSaverHook(str(tmp_path), progress=False)
    runner = SimpleNamespace(test_dataloader=SimpleNamespace(dataset=[None]))
    hook.before_test_epoch(runner)
    batch, outputs = make_batch(0, 1, with_text=False)
    del outputs[0].pred_sem_seg
    del outputs[0].gt_sem_seg
    hook.after_test_iter(runner, 0, batch, outputs)
    hook.after_test_epoch(runner, {})
    assert [p.name for p in (tmp_path / 'fused').iterdir()] == ['img0.png']
    assert not list((tmp_path / 'masks').iterdir())
