"""The LDFusion configs: they parse, name missing pretrained files, and the tiny one trains."""
import copy
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.structures import PixelData

from mmrisfusion.registry import DATASETS, MODELS
from mmrisfusion.structures import RISDataSample
from mmrisfusion.utils import register_all_modules

REPO_ROOT = Path(__file__).resolve().parents[3]
RECIPE = REPO_ROOT / 'configs/ldfusion/ldfusion_munit_clip_1xb16-100e_roadscene-224x224_tno.py'
RIS_CLIP_LOSS = (REPO_ROOT
                 / 'configs/risfusion/risfusion_swin-b_bert_1xb16-clip-loss-10e_mm-ris-480x480.py')
TINY = REPO_ROOT / 'tests/configs/ldfusion_tiny.py'
TINY_RIS = REPO_ROOT / 'tests/configs/risfusion_tiny.py'
CONFIGS = (RECIPE, RIS_CLIP_LOSS, TINY)  # every config with the CLIP language loss


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_parses(path):
    cfg = Config.fromfile(str(path))
    if cfg.model.type == 'FusionModel':
        terms = cfg.model.losses
        assert cfg.val_evaluator.type == 'FusionMetric'
        assert cfg.train_dataloader.dataset.type == 'RepeatDataset'
        assert cfg.train_dataloader.dataset.dataset.type == 'IVIFFolderDataset'
    else:
        assert cfg.model.type == 'RISFusion'
        terms = cfg.model.fusion_losses
    assert 'CLIPLanguageLoss' in [term.type for term in terms]


def test_published_recipe_values():
    cfg = Config.fromfile(str(RECIPE))
    clip_loss, vgg_loss = cfg.model.losses
    assert (clip_loss.sim_weight, clip_loss.global_weight, clip_loss.patch_weight,
            vgg_loss.loss_weight) == (6.0, 2.0, 10.0, 10.0)
    assert clip_loss.num_patches == 32 and clip_loss.entropy_threshold == 6.0
    assert clip_loss.patch_side_range == (0.5, 0.8) and clip_loss.translate == (0.0, 0.1)
    assert vgg_loss.layer_indices == (6, 11, 22)  # after the ReLUs, as the published code
    assert cfg.model.fuser.output_crop == 'top_left' and cfg.model.train_vis_luma == 'uint8'
    assert cfg.model.train_crop.translate == (0.0, 0.1) and cfg.randomness.seed == 3407
    assert cfg.model.input_noise_std == 0.03 and cfg.model.train_crop.size == 224
    assert cfg.optim_wrapper.optimizer.type == 'Adam' and cfg.optim_wrapper.optimizer.lr == 5e-4
    assert cfg.train_dataloader.batch_size == 16 and cfg.train_cfg.max_epochs == 100


#: RoadScene's pairs, the published training set size of our config.
ROADSCENE_PAIRS = 221


def lr_per_iteration(cfg, iterations_per_epoch: int) -> list:
    """The lr of every iteration, epoch by epoch, as mmengine's ParamSchedulerHook steps the
    config's schedulers (iteration-based ones after each iteration, epoch-based ones after each
    epoch)."""
    from mmengine.registry import PARAM_SCHEDULERS
    base_lr = cfg.optim_wrapper.optimizer.lr
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    schedulers = [PARAM_SCHEDULERS.build(copy.deepcopy(c), default_args=dict(
        optimizer=optimizer, epoch_length=iterations_per_epoch)) for c in cfg.param_scheduler]
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs):
        lrs.append([])
        for _ in range(iterations_per_epoch):
            lrs[-1].append(optimizer.param_groups[0]['lr'])
            optimizer.step()
            for scheduler in schedulers:
                if not scheduler.by_epoch:
                    scheduler.step()
        for scheduler in schedulers:
            if scheduler.by_epoch:
                scheduler.step()
    return lrs


def published_intent_lr(epoch: int, iteration: int, iterations_per_epoch: int,
                        base_lr: float = 5e-4) -> float:
    """The published config's schedule (epochs counted from 1): a LambdaLR warm-up
    ``(i + 1) / N`` over the first epoch, then MultiStepLR(milestones=[50, 60, ..., 100],
    gamma=0.5) stepped after every epoch."""
    warm = (iteration + 1) / iterations_per_epoch if epoch == 1 else 1.0
    halvings = sum(milestone <= epoch - 1 for milestone in (50, 60, 70, 80, 90, 100))
    return base_lr * warm * 0.5**halvings


def test_published_schedule():
    """100 epochs of 10 passes over RoadScene (138 iterations), one warm-up epoch, halving
    at 50, 60, ..., 100: the lr of epochs 1, 50, 59, 60, 99 against the published intent."""
    cfg = Config.fromfile(str(RECIPE))
    loader = cfg.train_dataloader
    assert loader.dataset.type == 'RepeatDataset' and loader.drop_last
    per_epoch = ROADSCENE_PAIRS * loader.dataset.times // loader.batch_size
    assert per_epoch == 138 and per_epoch * cfg.train_cfg.max_epochs == 13_800
    lrs = lr_per_iteration(cfg, per_epoch)
    for epoch in (50, 59, 60, 99):  # counted from 1, as mmengine's log prints them
        expected = published_intent_lr(epoch, 0, per_epoch)
        assert lrs[epoch - 1] == pytest.approx([expected] * per_epoch, rel=1e-9), epoch
    assert lrs[49][0] == pytest.approx(5e-4) and lrs[50][0] == pytest.approx(2.5e-4)
    assert lrs[59][0] == pytest.approx(2.5e-4) and lrs[60][0] == pytest.approx(1.25e-4)
    assert lrs[98][0] == pytest.approx(5e-4 / 32)
    # Warm-up: the published lr (i + 1) / 138 at iteration i of epoch 1, 5e-4 at its end.
    expected = [published_intent_lr(1, i, per_epoch) for i in range(per_epoch)]
    assert lrs[0] == pytest.approx(expected, rel=1e-9)
    assert lrs[0][0] == pytest.approx(5e-4 / 138) and lrs[0][-1] == pytest.approx(5e-4)
    assert lrs[1][0] == pytest.approx(5e-4)


def test_missing_pretrained_files_are_named(hf_clip_dir):
    register_all_modules()
    cfg = Config.fromfile(str(RECIPE))
    with pytest.raises(FileNotFoundError, match=r'data/pretrained/clip/ViT-B-32\.pt'):
        MODELS.build(cfg.model)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.losses[0].clip = dict(type='HFCLIPEncoder', pretrained=str(hf_clip_dir))
    with pytest.raises(FileNotFoundError, match=r'vgg19-dcbb9e9d\.pth'):
        MODELS.build(model_cfg)


class FixedBatchLoss(Hook):
    """Measures the training loss of one fixed batch (fixed crops, noise, patches)."""

    def __init__(self, batch: dict) -> None:
        self.batch = batch
        self.values = []

    def _measure(self, runner) -> None:
        model = runner.model
        state = torch.get_rng_state()
        torch.manual_seed(0)
        with torch.no_grad():
            data = model.data_preprocessor(copy.deepcopy(self.batch), True)
            losses = model(**data, mode='loss')
        torch.set_rng_state(state)
        self.values.append(sum(losses.values()).item())

    def before_train(self, runner) -> None:
        self._measure(runner)

    def after_train(self, runner) -> None:
        self._measure(runner)


def test_tiny_config_trains_lowers_the_loss_and_evaluates(tmp_path, hf_clip_dir, data_dir):
    register_all_modules()
    cfg = Config.fromfile(str(TINY))
    cfg.work_dir = str(tmp_path)
    cfg.model.losses[0].clip.pretrained = str(hf_clip_dir)
    ivif = data_dir / 'ivif'
    cfg.train_dataloader.dataset.dataset.data_root = str(ivif / 'roadscene')
    cfg.train_dataloader.dataset.dataset.indices = 2
    cfg.val_dataloader.dataset.data_root = str(ivif / 'tno')
    cfg.test_dataloader.dataset.data_root = str(ivif / 'tno')
    cfg.val_dataloader.dataset.indices = cfg.test_dataloader.dataset.indices = 1
    cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = 16
    cfg.default_hooks.checkpoint.interval = 16
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    probe = FixedBatchLoss(pseudo_collate([dataset[0], dataset[1]]))
    runner.register_hook(probe)
    runner.train()
    assert len(runner.message_hub.get_scalar('train/loss').data[0]) == 16
    before, after = probe.values
    assert after < 0.8 * before, probe.values
    assert (tmp_path / 'epoch_16.pth').is_file()

    metrics = runner.test()
    for name in ('fusion/EN', 'fusion/SD', 'fusion/MI', 'fusion/Qabf', 'fusion/SSIM_dr255'):
        assert math.isfinite(metrics[name]), (name, metrics)
    assert 0 < metrics['fusion/EN'] <= 8


def test_clip_term_plugs_into_risfusion(hf_clip_dir):
    """The language loss as an extra RIS-FUSION fusion term (fusion-term contract)."""
    register_all_modules()
    cfg = Config.fromfile(str(TINY_RIS))
    cfg.model.fusion_losses = list(cfg.model.fusion_losses) + [
        dict(type='CLIPLanguageLoss', clip=dict(type='HFCLIPEncoder', pretrained=str(hf_clip_dir)),
             num_patches=2, loss_weight=0.1)]
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    inputs = dict(vis=torch.randn(2, 3, 64, 64), ir=torch.randn(2, 3, 64, 64),
                  token_ids=torch.randint(1, 1000, (2, 8)),
                  token_mask=torch.ones(2, 8, dtype=torch.long))
    samples = [RISDataSample(gt_sem_seg=PixelData(data=(torch.rand(1, 64, 64) > 0.5).long()),
                             metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                           pad_shape=(64, 64))) for _ in range(2)]
    losses = model(inputs, samples, mode='loss')
    assert 'fusion.loss_clip' in losses and losses['fusion.loss_clip'].dim() == 0
    losses['fusion.loss_clip'].backward()
    grads = [p.grad for p in model.fuser.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0

    # With return_terms the parts are logged apart, each times lambda, as in FusionModel.
    clip_term = model.fusion_losses[-1]
    clip_term.return_terms = True
    clip_term.patch_weight = 0.0  # random patches would differ between the two calls
    model.eval()
    with torch.no_grad():
        losses = model(inputs, samples, mode='loss')
        fused, _ = model._run_network(inputs)
        parts = clip_term(*model.fusion_lumas(fused, inputs['vis'], inputs['ir']))
    assert set(parts) == {'loss_clip_sim', 'loss_clip_dir'}
    for name, value in parts.items():
        torch.testing.assert_close(losses[f'fusion.{name}'], model.fusion_loss_weight * value)
