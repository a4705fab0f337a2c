"""FusionMetric: real TNO triples through mmengine's Evaluator reproduce the reference."""
import json

import cv2
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from mmrisfusion.evaluation import FUSION_METRICS, FusionMetric, compute_fusion_metrics, rgb_to_gray
from mmrisfusion.registry import METRICS
from mmrisfusion.structures import RISDataSample

NAMES = ['07.png', '20.png']  # the two smallest TNO pairs (256 x 256, 270 x 360)


def _rgb_chw(path):
    return torch.from_numpy(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)).permute(
        2, 0, 1).contiguous()


@pytest.fixture(scope='module')
def tno(data_dir):
    """Per name: the pipeline-style uint8 sources, the fused image in [0, 1] and the
    reference values of the published evaluator."""
    metrics, pairs = data_dir / 'fusion_metrics', data_dir / 'ivif' / 'tno'
    with open(metrics / 'tno_reference.json') as file:
        images = json.load(file)['images']
    reference, mean_reference = images['tno_max'], images['tno_mean']
    items = {}
    for name in NAMES:
        fused = _rgb_chw(metrics / 'tno_max' / name)
        fused_mean = _rgb_chw(metrics / 'tno_mean' / name)
        items[name] = dict(
            vis=_rgb_chw(pairs / 'vi' / name),
            ir=_rgb_chw(pairs / 'ir' / name)[:1],  # 1 channel
            fused=fused.float() / 255, expected=reference[name],
            fused_mean=fused_mean.float() / 255, expected_mean=mean_reference[name])
    return items


def _sample(name, fused, **metainfo):
    sample = RISDataSample(metainfo=dict(img_name=name, **metainfo))
    sample.pred_fused = PixelData(data=fused)
    return sample


def test_evaluator_reproduces_the_published_numbers(tno):
    init_default_scope('mmrisfusion')
    evaluator = Evaluator(METRICS.build(dict(type='FusionMetric')))
    for name, item in tno.items():  # one batch per image, pseudo_collate layout
        batch = dict(inputs=dict(vis=[item['vis']], ir=[item['ir']]))
        evaluator.process([_sample(name, item['fused'])], data_batch=batch)
    metrics = evaluator.evaluate(len(tno))
    assert list(metrics) == [f'fusion/{name}' for name in FUSION_METRICS]
    assert all(type(value) is float for value in metrics.values())
    for metric_name in FUSION_METRICS:
        if metric_name == 'Nabf':
            continue  # not in the reference; checked against a pixel loop elsewhere
        expected = np.mean([item['expected'][metric_name] for item in tno.values()])
        assert metrics[f'fusion/{metric_name}'] == pytest.approx(expected, rel=1e-4), (
            metric_name)


def test_per_image_values_and_stacked_batches(tno):
    """default_collate layout (stacked tensors), several images in one batch."""
    metric = FusionMetric(metrics=['EN', 'Qabf', 'SSIM_dr2'])
    item = tno['07.png']
    batch = dict(inputs=dict(vis=torch.stack([item['vis'], item['vis']]),
                             ir=torch.stack([item['ir'], item['ir']])))
    metric.process(batch, [_sample('max', item['fused']).to_dict(),
                           _sample('mean', item['fused_mean'])])
    assert [r['img_name'] for r in metric.results] == ['max', 'mean']
    for result, expected in zip(metric.results, (item['expected'], item['expected_mean'])):
        assert result['EN'] == pytest.approx(expected['EN'], rel=1e-6)
        assert result['Qabf'] == pytest.approx(expected['Qabf'], rel=1e-4)
        assert result['SSIM_dr2'] == pytest.approx(expected['SSIM_dr2'], rel=1e-4)
    assert list(metric.compute_metrics(metric.results)) == ['EN', 'Qabf', 'SSIM_dr2']


def test_padding_flip_and_resize_are_undone(tno):
    item = tno['07.png']
    h, w = item['vis'].shape[1:]
    reference = FusionMetric(metrics=['SF', 'VIF'])
    reference.process(dict(inputs=dict(vis=[item['vis']], ir=[item['ir']])),
                      [_sample('x', item['fused'])])
    expected = reference.results[0]

    # pipeline padding (left 4, right 12, top 8, bottom 24) on the sources; the model
    # removed it from its output
    def pad(image):
        out = torch.zeros(image.shape[0], h + 32, w + 16, dtype=image.dtype)
        out[:, 8:8 + h, 4:4 + w] = image
        return out

    metric = FusionMetric(metrics=['SF', 'VIF'])
    metric.process(dict(inputs=dict(vis=[pad(item['vis'])], ir=[pad(item['ir'])])),
                   [_sample('x', item['fused'], padding_size=(4, 12, 8, 24))])
    assert metric.results[0] == expected

    # the pipeline flipped the sources; the model already un-flipped its fused output
    metric.process(dict(inputs=dict(vis=[item['vis'].flip(2)], ir=[item['ir'].flip(2)])),
                   [_sample('x', item['fused'], flip=True, flip_direction='horizontal')])
    assert metric.results[1] == expected

    # a fusion model that resized its output to ori_shape while the sources are smaller
    small = dict(vis=[item['vis'][:, ::2, ::2].contiguous()],
                 ir=[item['ir'][:, ::2, ::2].contiguous()])
    metric.process(dict(inputs=small), [_sample('y', item['fused'], ori_shape=(h, w),
                                                img_shape=(h // 2, w // 2))])
    fused_small = torch.nn.functional.interpolate(item['fused'][None], size=(h // 2, w // 2),
                                                  mode='bilinear', align_corners=False)[0]
    fused_gray, vis_gray = (
        rgb_to_gray(np.ascontiguousarray(x.permute(1, 2, 0).numpy()))
        for x in (torch.round(fused_small * 255).to(torch.uint8), small['vis'][0]))
    direct = compute_fusion_metrics(fused_gray, small['ir'][0][0].double().numpy(), vis_gray,
                                    ['SF', 'VIF'])
    assert metric.results[2]['SF'] == pytest.approx(direct['SF'])
    assert metric.results[2]['VIF'] == pytest.approx(direct['VIF'])


def test_bad_inputs_name_the_sample(tno):
    item = tno['07.png']
    batch = dict(inputs=dict(vis=[item['vis']], ir=[item['ir']]))
    metric = FusionMetric()
    with pytest.raises(ValueError, match='07.png.*resolution'):
        metric.process(batch, [_sample('07.png', item['fused'][:, :100])])
    with pytest.raises(KeyError, match="07.png.*'pred_fused'"):
        metric.process(batch, [RISDataSample(metainfo=dict(img_name='07.png'))])
    with pytest.raises(ValueError, match='07.png.*uint8'):
        metric.process(dict(inputs=dict(vis=[item['vis'].float()], ir=[item['ir']])),
                       [_sample('07.png', item['fused'])])
    with pytest.raises(KeyError, match="inputs.*'ir'"):
        metric.process(dict(inputs=dict(vis=[item['vis']])), [_sample('07.png', item['fused'])])
    with pytest.raises(ValueError, match='SSIM'):
        FusionMetric(metrics=['SSIM'])
    with pytest.raises(ValueError, match='no images'):
        metric.compute_metrics([])
