"""RISMetric on hand-made masks with exactly known numbers."""
import pickle

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from mmrisfusion.evaluation import RISMetric
from mmrisfusion.registry import METRICS
from mmrisfusion.structures import RISDataSample


def _mask(rows, ignore=()):
    """A (1, 4, 4) label map with the given (row, col) pixels set to 1 (or 255)."""
    data = torch.zeros(1, 4, 4, dtype=torch.int64)
    for r, c in rows:
        data[0, r, c] = 1
    for r, c in ignore:
        data[0, r, c] = 255
    return data


def _sample(pred, gt, **metainfo):
    sample = RISDataSample(metainfo=dict(img_name=metainfo.pop('img_name', 'x.png'),
                                         **metainfo))
    sample.pred_sem_seg = PixelData(data=pred)
    sample.gt_sem_seg = PixelData(data=gt)
    return sample


SQUARE = [(0, 0), (0, 1), (1, 0), (1, 1)]
TOP_ROW = [(0, 0), (0, 1), (0, 2), (0, 3)]

# (pred, gt) -> IoU: perfect 1; partial 2 / 6; empty prediction 0; empty pred and GT (empty
# union) 0; empty GT with a prediction 0.
CASES = [
    (_mask(SQUARE), _mask(SQUARE)),
    (_mask(TOP_ROW), _mask(SQUARE)),
    (_mask([]), _mask([(3, 3), (2, 3)])),
    (_mask([]), _mask([])),
    (_mask([(2, 2), (3, 2), (3, 3)]), _mask([])),
]


def _evaluate(metric, samples):
    metric.process({}, [s.to_dict() for s in samples])
    return metric.compute_metrics(metric.results)


def test_hand_made_cases_give_exact_numbers():
    metrics = _evaluate(RISMetric(), [_sample(p, g) for p, g in CASES])
    assert set(metrics) == {'mIoU', 'oIoU', 'P@0.5', 'P@0.6', 'P@0.7', 'P@0.8', 'P@0.9',
                            'pixel_precision', 'pixel_recall', 'pixel_F1', 'cIoU_bgfg'}
    assert all(type(v) is float for v in metrics.values())
    assert metrics['mIoU'] == pytest.approx(100 * (1 + 1 / 3) / 5)
    assert metrics['oIoU'] == pytest.approx(100 * 6 / 15)  # I = 4+2, U = 4+6+2+0+3
    for thr in (0.5, 0.6, 0.7, 0.8, 0.9):
        assert metrics[f'P@{thr}'] == pytest.approx(20.0)
    assert metrics['pixel_precision'] == pytest.approx(100 * 6 / 11)  # |P| = 4+4+0+0+3
    assert metrics['pixel_recall'] == pytest.approx(100 * 6 / 10)  # |G| = 4+4+2+0+0
    assert metrics['pixel_F1'] == pytest.approx(100 * 12 / 21)
    # Background of the 16-pixel maps: I_bg = 12+10+14+16+13, U_bg = 12+14+16+16+16.
    assert metrics['cIoU_bgfg'] == pytest.approx(50 * (65 / 74 + 6 / 15))


def _published_ciou(pairs):
    """The published "cIoU" from its definition: per-class IoU of the pooled pixels,
    averaged over the classes with a non-empty union (docs/metrics.md#the-published-ciou)."""
    ious = []
    for cls in (0, 1):
        inter = sum(int(((p == cls) & (g == cls)).sum()) for p, g in pairs)
        union = sum(int(((p == cls) | (g == cls)).sum()) for p, g in pairs)
        if union:
            ious.append(inter / union)
    return 100 * sum(ious) / len(ious)


def test_ciou_bgfg_is_the_published_pooled_class_mean():
    generator = torch.Generator().manual_seed(0)
    pairs = [(torch.rand(1, 6, 5, generator=generator).gt(0.6).long(),
              torch.rand(1, 6, 5, generator=generator).gt(0.7).long()) for _ in range(7)]
    metrics = _evaluate(RISMetric(), [_sample(p, g) for p, g in pairs])
    assert metrics['cIoU_bgfg'] == pytest.approx(_published_ciou(pairs))
    assert metrics['cIoU_bgfg'] > metrics['oIoU']  # the background lifts it
    # Only background anywhere: the foreground class has no union and is left out.
    empty = [(_mask([]), _mask([]))] * 2
    assert _evaluate(RISMetric(), [_sample(p, g) for p, g in empty])['cIoU_bgfg'] == 100.0


def test_ciou_bgfg_leaves_ignored_pixels_out_of_the_background():
    pred = _mask(SQUARE + [(3, 3)])
    gt = _mask(SQUARE, ignore=[(3, 3), (3, 2)])
    metrics = _evaluate(RISMetric(), [_sample(pred, gt)])
    assert metrics['cIoU_bgfg'] == 100.0  # 10 background and 4 object pixels, all right


@pytest.mark.parametrize('case, expected_iou', [(0, 1.0), (1, 1 / 3), (2, 0.0), (3, 0.0),
                                                (4, 0.0)])
def test_single_cases(case, expected_iou):
    metrics = _evaluate(RISMetric(iou_thrs=(0.3, 0.5)), [_sample(*CASES[case])])
    assert metrics['mIoU'] == pytest.approx(100 * expected_iou)
    assert metrics['P@0.3'] == (100.0 if expected_iou >= 0.3 else 0.0)
    assert metrics['P@0.5'] == (100.0 if expected_iou >= 0.5 else 0.0)


def test_empty_prediction_and_gt_reports_zero_not_nan():
    metrics = _evaluate(RISMetric(), [_sample(_mask([]), _mask([]))])
    assert metrics['mIoU'] == metrics['oIoU'] == metrics['pixel_F1'] == 0.0


def test_ignore_index_pixels_count_for_nothing():
    # The prediction covers the square and an ignored pixel: still a perfect match.
    pred = _mask(SQUARE + [(3, 3)])
    gt = _mask(SQUARE, ignore=[(3, 3)])
    metrics = _evaluate(RISMetric(), [_sample(pred, gt)])
    assert metrics['mIoU'] == metrics['oIoU'] == metrics['pixel_precision'] == 100.0


def test_gt_padding_and_flip_are_undone_like_the_model_does_on_its_prediction():
    gt = torch.full((1, 7, 9), 255, dtype=torch.int64)  # padded: left 2, right 3, top 1, bottom 2
    gt[:, 1:5, 2:6] = _mask([(0, 0), (0, 1)]).flip(-1)  # the pipeline flipped horizontally
    sample = _sample(_mask(SQUARE), gt, padding_size=(2, 3, 1, 2), flip=True,
                     flip_direction='horizontal')
    metrics = _evaluate(RISMetric(), [sample])
    assert metrics['mIoU'] == pytest.approx(50.0)  # the square holds both GT pixels
    assert metrics['pixel_recall'] == 100.0
    assert metrics['pixel_precision'] == 50.0


@pytest.mark.parametrize('direction, dims', [('horizontal', (-1, )), ('vertical', (-2, )),
                                             ('diagonal', (-2, -1))])
def test_gt_flip_is_undone_in_every_direction_of_mmseg_random_flip(direction, dims):
    gt = _mask([(0, 0), (0, 1), (1, 0)]).flip(dims)  # the pipeline flipped the GT
    metrics = _evaluate(RISMetric(), [_sample(_mask([(0, 0), (0, 1), (1, 0)]), gt, flip=True,
                                              flip_direction=direction)])
    assert metrics['mIoU'] == 100.0


def test_results_are_small_plain_numbers_for_gathering_across_ranks():
    metric = RISMetric()
    metric.process({}, [_sample(*CASES[1])])
    assert metric.results == [(2, 6, 4, 4, 16, False)]
    assert all(type(v) in (int, bool) for v in metric.results[0])
    assert len(pickle.dumps(metric.results)) < 100


def test_split_results_reduce_like_one_rank():
    """What collect_results does across ranks: concatenating per-rank results."""
    whole = RISMetric()
    whole.process({}, [_sample(p, g) for p, g in CASES])
    rank0, rank1 = RISMetric(), RISMetric()
    rank0.process({}, [_sample(p, g) for p, g in CASES[:2]])
    rank1.process({}, [_sample(p, g) for p, g in CASES[2:]])
    assert whole.compute_metrics(rank0.results + rank1.results) == whole.compute_metrics(
        whole.results)


def test_text_sensitivity_reports_the_drop():
    matched = [_sample(*CASES[0]), _sample(*CASES[1])]  # IoU 1 and 1/3
    mismatched = [_sample(*CASES[1], text_permuted=True),  # IoU 1/3
                  _sample(*CASES[2], text_permuted=True)]  # IoU 0
    metrics = _evaluate(RISMetric(text_sensitivity=True), matched + mismatched)
    assert metrics['mIoU'] == pytest.approx(100 * (1 + 1 / 3) / 2)
    assert metrics['mIoU_mismatched'] == pytest.approx(100 * (1 / 3) / 2)
    assert metrics['text_sensitivity_drop'] == pytest.approx(100 * 0.5)
    assert metrics['oIoU_mismatched'] == pytest.approx(100 * 2 / 8)
    # Without the option the flag is not read and every sample counts.
    plain = _evaluate(RISMetric(), matched + mismatched)
    assert 'mIoU_mismatched' not in plain
    assert plain['mIoU'] == pytest.approx(100 * (1 + 2 / 3) / 4)


def test_text_sensitivity_without_mismatched_samples_is_an_error():
    metric = RISMetric(text_sensitivity=True)
    metric.process({}, [_sample(*CASES[0])])
    with pytest.raises(ValueError, match='text_permuted=True'):
        metric.compute_metrics(metric.results)


def test_bad_inputs_name_the_sample():
    metric = RISMetric()
    with pytest.raises(ValueError, match='a.png.*one resolution'):
        metric.process({}, [_sample(_mask([]), torch.zeros(1, 5, 4, dtype=torch.int64),
                                    img_name='a.png')])
    with pytest.raises(ValueError, match=r'b.png.*class indices.*\[2\]'):
        metric.process({}, [_sample(_mask([]), _mask([])),
                            _sample(_mask([]) + 2, _mask([]), img_name='b.png')])
    with pytest.raises(ValueError, match=r"b2.png: 'gt_sem_seg'.*\[0, 3\]"):
        metric.process({}, [_sample(_mask([]), _mask([(1, 1)]) * 3, img_name='b2.png')])
    sample = RISDataSample(metainfo=dict(img_name='c.png'))
    sample.gt_sem_seg = PixelData(data=_mask([]))
    with pytest.raises(KeyError, match='c.png.*pred_sem_seg'):
        metric.process({}, [sample])
    with pytest.raises(ValueError, match='no samples'):
        metric.compute_metrics([])
    with pytest.raises(ValueError, match='iou_thrs'):
        RISMetric(iou_thrs=(0.5, 1.5))


def test_registered_and_driven_by_mmengine_evaluator():
    init_default_scope('mmrisfusion')
    metric = METRICS.build(dict(type='RISMetric', prefix='ris'))
    assert isinstance(metric, RISMetric)
    evaluator = Evaluator(metric)
    evaluator.process([_sample(p, g) for p, g in CASES[:2]], data_batch={})
    evaluator.process([_sample(p, g) for p, g in CASES[2:]], data_batch={})
    metrics = evaluator.evaluate(len(CASES))
    assert metrics['ris/oIoU'] == pytest.approx(40.0)
    assert metrics['ris/mIoU'] == pytest.approx(100 * (4 / 3) / 5)


def test_process_reads_the_counts_back_once_per_batch(monkeypatch):
    """No host sync per sample: on a GPU each read of a tensor's value waits for the device."""
    reads = []
    for name in ('tolist', 'item', '__int__', '__bool__', '__float__', '__index__'):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    metric = RISMetric()
    metric.process({}, [_sample(p, g).to_dict() for p, g in CASES * 4])
    assert reads == ['tolist']
    assert len(metric.results) == 4 * len(CASES)
