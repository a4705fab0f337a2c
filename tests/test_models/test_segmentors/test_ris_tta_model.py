"""RISTTAModel and the shipped tta_pipeline: the mean over the sample and its mirror."""
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.structures import PixelData

from mmrisfusion.datasets import ris_collate
from mmrisfusion.datasets.synthetic_mmris import make_synthetic_splits
from mmrisfusion.models.segmentors import RISTTAModel
from mmrisfusion.registry import DATASETS, MODELS
from mmrisfusion.structures import RISDataSample
from mmrisfusion.utils import register_all_modules


def _view(logits, fused):
    sample = RISDataSample(metainfo=dict(img_name='a.png'))
    sample.set_data(dict(seg_logits=PixelData(data=logits),
                         pred_sem_seg=PixelData(data=logits.argmax(0, keepdim=True)),
                         pred_fused=PixelData(data=fused)))
    return sample


class _Predicted(torch.nn.Module):
    """Stands in for the model: merging works on its predictions, not on it."""

    def test_step(self, data):
        raise AssertionError('merge_preds does not predict')


def test_merge_averages_the_probabilities_and_the_fused_images():
    first = torch.tensor([[[0.0, 0.0]], [[1.0, -1.0]]])  # (2 classes, 1, 2)
    second = torch.tensor([[[0.0, 0.0]], [[-3.0, 2.0]]])
    views = [_view(first, torch.zeros(3, 1, 2)), _view(second, torch.ones(3, 1, 2))]
    views[0].gt_sem_seg = PixelData(data=torch.tensor([[[1, 0]]]))
    merged, = RISTTAModel(module=_Predicted()).merge_preds([views])
    probs = (first.softmax(0) + second.softmax(0)) / 2
    torch.testing.assert_close(merged.seg_logits.data.exp(), probs)
    # Foreground probabilities: pixel 0 0.73 and 0.05 (mean 0.39), pixel 1 0.27 and 0.88
    # (0.57): the mean decides, not the first view.
    assert merged.pred_sem_seg.data.tolist() == [[[0, 1]]]
    torch.testing.assert_close(merged.pred_fused.data, torch.full((3, 1, 2), 0.5))
    assert merged is views[0] and merged.gt_sem_seg.data.tolist() == [[[1, 0]]]


def test_shipped_pipeline_mirrors_the_sample_and_its_words(tiny_ris_config_file, tmp_path):
    register_all_modules()
    cfg = Config.fromfile(tiny_ris_config_file)
    make_synthetic_splits(str(tmp_path), num_rows=dict(train=1, val=1, test=12), size=64,
                          seed=0)
    dataset = DATASETS.build(dict(type='MMRISDataset', data_root=str(tmp_path),
                                  data_path='mm_ris_test.parquet', test_mode=True,
                                  pipeline=cfg.tta_pipeline))
    plain = Compose(cfg.test_pipeline)
    texts = [dataset.get_data_info(i)['text'] for i in range(len(dataset))]
    index = next(i for i, text in enumerate(texts) if ' left' in text or ' right' in text)
    batch = ris_collate([dataset[index], dataset[0]])
    views = batch['inputs']
    assert len(views) == 2  # as it is, mirrored
    original, mirrored = batch['data_samples']
    assert original[0].text == texts[index] and not original[0].flip
    swapped = texts[index].replace('left', '#').replace('right', 'left').replace('#', 'right')
    assert mirrored[0].text == swapped and mirrored[0].flip
    assert torch.equal(views[1]['vis'][0], views[0]['vis'][0].flip(-1))
    assert torch.equal(original[0].gt_sem_seg.data, plain(dataset.get_data_info(index))[
        'data_samples'].gt_sem_seg.data)

    torch.manual_seed(0)
    tta = MODELS.build(dict(cfg.tta_model, module=cfg.model)).eval()
    with torch.no_grad():
        merged = tta.test_step(batch)
        # By hand: each view's logits, the mirrored one flipped back, probabilities averaged.
        probs = []
        for view, samples in zip(views, batch['data_samples']):
            inputs = tta.module.data_preprocessor(dict(inputs=view, data_samples=samples),
                                                  False)['inputs']
            logits = tta.module(inputs, mode='tensor').softmax(1)
            probs.append(logits.flip(-1) if samples[0].flip else logits)
    mean = (probs[0] + probs[1]) / 2
    for k, sample in enumerate(merged):
        torch.testing.assert_close(sample.seg_logits.data.exp(), mean[k], atol=1e-5, rtol=0)
        assert torch.equal(sample.pred_sem_seg.data[0], (mean[k, 1] > mean[k, 0]).long())
        assert not sample.flip and sample.text == texts[[index, 0][k]]
