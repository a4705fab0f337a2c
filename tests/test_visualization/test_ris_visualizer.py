"""RISLocalVisualizer records panels through mmengine's backends."""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from mmrisfusion.registry import VISUALIZERS
from mmrisfusion.structures import RISDataSample
from mmrisfusion.visualization import RISLocalVisualizer


def make_sample(size: int = 16) -> RISDataSample:
    sample = RISDataSample(metainfo=dict(img_name='scene_01.png', sample_idx=3))
    mask = torch.zeros(1, size, size, dtype=torch.long)
    mask[0, 4:12, 4:12] = 1
    sample.gt_sem_seg = PixelData(data=mask)
    sample.pred_sem_seg = PixelData(data=mask)
    sample.pred_fused = PixelData(data=torch.full((3, size, size), 0.25))
    sample.text = 'the warm person'
    return sample


def test_add_datasample_writes_panel(tmp_path):
    visualizer = VISUALIZERS.build(dict(
        type='RISLocalVisualizer', name='test_ris_visualizer_local',
        vis_backends=[dict(type='LocalVisBackend')], save_dir=str(tmp_path)))
    assert isinstance(visualizer, RISLocalVisualizer)
    vis = np.zeros((16, 16, 3), np.uint8)
    ir = torch.full((1, 16, 16), 255, dtype=torch.uint8)
    visualizer.add_datasample('val_sample', vis, make_sample(), ir=ir, step=5)
    written = tmp_path / 'vis_data' / 'vis_image' / 'val_sample_5.png'
    assert written.is_file()
    out_file = tmp_path / 'panel.png'
    visualizer.add_datasample('x', vis, make_sample(), ir=ir, out_file=str(out_file))
    assert out_file.is_file()
    panel = visualizer.draw_sample(vis, ir, make_sample(), draw_gt=False)
    assert panel.shape[1] == 4 * 16 + 3 * 2  # VIS, IR, fused, prediction
    with pytest.raises(ValueError, match='infrared'):
        visualizer.add_datasample('no_ir', vis, make_sample())


def test_tensorboard_backend(tmp_path):
    pytest.importorskip('tensorboard',
                        reason='tensorboard is not installed (requirements/optional.txt lists it)')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    visualizer = RISLocalVisualizer(name='test_ris_visualizer_tb',
                                    vis_backends=[dict(type='TensorboardVisBackend')],
                                    save_dir=str(tmp_path))
    visualizer.add_datasample('val_0_scene', np.zeros((16, 16, 3), np.uint8), make_sample(),
                              ir=np.zeros((16, 16), np.uint8), step=2)
    visualizer.close()
    events = EventAccumulator(str(tmp_path / 'vis_data'))
    events.Reload()
    assert 'val_0_scene' in events.Tags()['images']
