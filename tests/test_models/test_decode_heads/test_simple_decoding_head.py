import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.decode_heads.decode_head import BaseDecodeHead

from mmrisfusion.models.decode_heads import SimpleDecodingHead
from mmrisfusion.models.utils.ckpt_convert import convert_lavt_official, infer_lavt_arch
from mmrisfusion.structures import RISDataSample

TINY = dict(in_channels=(8, 16, 32, 64), channels=16)


def _feats(batch=2, size=(15, 11), channels=(8, 16, 32, 64)):
    h, w = size
    feats = []
    for c in channels:
        feats.append(torch.randn(batch, c, h, w))
        h, w = -(-h // 2), -(-w // 2)
    return feats


def _samples(labels):
    samples = []
    for label in labels:
        sample = RISDataSample()
        sample.gt_sem_seg = PixelData(data=label[None])
        samples.append(sample)
    return samples


def test_reproduces_reference_logits(tiny_reference):
    """Converted official weights turn the reference backbone maps into its logits."""
    checkpoint, io = tiny_reference.checkpoint, tiny_reference.io
    arch = infer_lavt_arch(checkpoint['model'])['decode_head']
    arch.pop('type')
    head = SimpleDecodingHead(**arch).eval()
    head.load_state_dict({k[len('decode_head.'):]: v for k, v in convert_lavt_official(
        checkpoint['model']).items() if k.startswith('decode_head.')}, strict=True)
    with torch.no_grad():
        logits = head.predict(io['backbone_outs'], [dict(img_shape=(224, 224),
                                                         pad_shape=(224, 224))], None)
    assert (logits - io['logits']).abs().max().item() <= 1e-4


def test_forward_shape_at_first_level():
    head = SimpleDecodingHead(**TINY)
    assert head.forward(_feats()).shape == (2, 2, 15, 11)
    assert len(head.fuse_convs) == 3 and head.conv_seg.out_channels == 2


def test_one_width_per_fusion_step():
    """channels as a sequence: deep to shallow, the last one feeds the classifier."""
    head = SimpleDecodingHead(in_channels=(4, 8, 16, 32, 64), in_index=(0, 1, 2, 3, 4),
                              channels=(16, 16, 12, 6))
    widths = [(step[0].conv.in_channels, step[0].conv.out_channels, step[1].conv.out_channels)
              for step in head.fuse_convs]
    assert widths == [(64 + 32, 16, 16), (16 + 16, 16, 16), (16 + 8, 12, 12), (12 + 4, 6, 6)]
    assert head.channels == 6 and head.conv_seg.in_channels == 6
    assert head.forward(_feats(channels=(4, 8, 16, 32, 64))).shape == (2, 2, 15, 11)
    with pytest.raises(ValueError, match=r'one width per fusion step, 3'):
        SimpleDecodingHead(in_channels=(8, 16, 32, 64), channels=(16, 8))


def test_loss_is_published_dice_on_upsampled_logits():
    torch.manual_seed(0)
    head = SimpleDecodingHead(**TINY)
    feats = _feats(size=(8, 8))
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    labels[0, 4:20, 6:30] = 1
    losses = head.loss(feats, _samples(labels), None)
    assert set(losses) == {'loss_dice', 'acc_seg'}
    logits = F.interpolate(head.forward(feats), size=(32, 32), mode='bilinear',
                           align_corners=True)
    prob, target = torch.sigmoid(logits[:, 1]), labels.float()
    per_sample = []
    for b in range(2):
        dices = []
        for p, t in ((prob[b], target[b]), (1 - prob[b], 1 - target[b])):
            if t.sum() > 0:
                dices.append((2 * (p * t).sum() + 1e-6) / (p.sum() + t.sum() + 1e-6))
        per_sample.append(1 - torch.stack(dices).mean())
    torch.testing.assert_close(losses['loss_dice'], torch.stack(per_sample).mean())
    losses['loss_dice'].backward()
    assert all(p.grad is not None for p in head.parameters())


def test_weighted_cross_entropy_option():
    head = SimpleDecodingHead(**TINY, loss_decode=dict(type='CrossEntropyLoss',
                                                       class_weight=[0.9, 1.1],
                                                       loss_name='loss_ce'))
    labels = torch.randint(0, 2, (2, 32, 32))
    losses = head.loss(_feats(size=(8, 8)), _samples(labels), None)
    assert losses['loss_ce'].item() > 0


def test_predict_resizes_with_align_corners():
    head = SimpleDecodingHead(**TINY).eval()
    feats = _feats(size=(8, 8))
    out = head.predict(feats, [dict(img_shape=(30, 30), pad_shape=(32, 32))], None)
    expected = F.interpolate(head.forward(feats), size=(32, 32), mode='bilinear',
                             align_corners=True)
    torch.testing.assert_close(out, expected)


def test_swin_b_defaults_and_bad_config():
    head = SimpleDecodingHead()
    assert head.fuse_convs[0][0].conv.in_channels == 1024 + 512
    assert head.align_corners is True and head.dropout is None
    with pytest.raises(ValueError, match='in_index'):
        SimpleDecodingHead(in_channels=(8, 16), in_index=(0, 1, 2))


def _fusion_convs(head):
    return [m for m in head.fuse_convs.modules() if isinstance(m, torch.nn.Conv2d)]


def test_fusion_convs_start_from_pytorchs_default_as_published():
    """PyTorch's default is uniform in +-1/sqrt(fan_in): std = bound/sqrt(3). mmcv's Kaiming
    fan-out normal (the 'kaiming' option) is 2.5 to 4 times wider at these widths."""
    torch.manual_seed(0)
    for conv_init in ('pytorch', 'kaiming'):
        head = SimpleDecodingHead(in_channels=(128, 256, 512, 1024), channels=512,
                                  conv_init=conv_init)
        head.init_weights()  # what the Runner calls before training
        for conv in _fusion_convs(head):
            fan_in = conv.in_channels * 9
            fan_out = conv.out_channels * 9
            weight = conv.weight.detach()
            if conv_init == 'pytorch':
                bound = fan_in**-0.5
                assert weight.abs().max() <= bound
                assert weight.std() == pytest.approx(bound / 3**0.5, rel=0.02)
            else:
                assert weight.std() == pytest.approx((2 / fan_out)**0.5, rel=0.02)
        bns = [m for m in head.fuse_convs.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert all(bn.weight.eq(1).all() and bn.bias.eq(0).all() for bn in bns)
    with pytest.raises(ValueError, match='conv_init'):
        SimpleDecodingHead(**TINY, conv_init='xavier')


def test_init_cfg_still_applies_over_the_published_init():
    head = SimpleDecodingHead(**TINY, init_cfg=dict(type='Constant', val=0.5, layer='Conv2d'))
    head.init_weights()
    assert all(conv.weight.eq(0.5).all() for conv in _fusion_convs(head))
def test_loss_and_predict_by_feat_are_mmsegs():
    """Our *_by_feat avoid mmseg's host synchronisations and resize warning, with mmseg's
    numbers: two summed losses of one name, acc_seg (with ignored pixels) and the resize."""
    torch.manual_seed(0)
    loss_decode = [dict(type=f'mmrisfusion.{name}', **extra) for name, extra in (
        ('TwoClassDiceLoss', {}), ('TwoClassDiceLoss', dict(eps=1e-3)),
        ('WeightedCrossEntropyLoss', {}))]
    head = SimpleDecodingHead(**TINY, loss_decode=loss_decode)
    logits = torch.randn(2, 2, 8, 8)
    labels = torch.randint(0, 2, (2, 32, 32))
    labels[1, 20:] = 255
    ours = head.loss_by_feat(logits, _samples(labels))
    theirs = BaseDecodeHead.loss_by_feat(head, logits, _samples(labels))
    assert set(ours) == set(theirs) == {'loss_dice', 'loss_ce', 'acc_seg'}
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key].reshape(()), msg=key)
    metas = [dict(img_shape=(30, 28), pad_shape=(32, 32))]
    torch.testing.assert_close(head.predict_by_feat(logits, metas),
                               BaseDecodeHead.predict_by_feat(head, logits, metas))


def test_loss_without_accuracy_and_without_host_synchronisation():
    """On meta tensors (no data) any data-dependent branch or .item() would raise."""
    head = SimpleDecodingHead(**TINY, log_accuracy=False)
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    assert set(head.loss_by_feat(torch.randn(2, 2, 8, 8), _samples(labels))) == {'loss_dice'}
    head = SimpleDecodingHead(**TINY).to('meta')
    feats = [f.to('meta') for f in _feats(size=(8, 8))]
    losses = head.loss(feats, _samples(labels.to('meta')), None)
    assert {k: v.device.type for k, v in losses.items()} == dict(loss_dice='meta',
                                                                acc_seg='meta')
