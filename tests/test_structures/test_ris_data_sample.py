"""RISDataSample's fields and the sample names used in error messages."""
import pytest
import torch
from mmengine.structures import PixelData

from mmrisfusion.structures import RISDataSample, sample_name


def test_text_and_fused_fields():
    sample = RISDataSample(metainfo=dict(img_name='a.png'))
    sample.text = 'the warm person'
    sample.pred_fused = PixelData(data=torch.zeros(3, 2, 2))
    assert sample.text == 'the warm person' and sample.pred_fused.shape == (2, 2)
    with pytest.raises(TypeError, match='text must be a str'):
        sample.text = 3


def test_sample_name():
    sample = RISDataSample(metainfo=dict(img_name='a.png', img_path='/x/a.png'))
    assert sample_name(sample.metainfo) == sample_name(sample.to_dict(), 3) == 'a.png'
    assert sample_name(dict(img_path='/x/b.png'), 0) == '/x/b.png'
    assert sample_name({}, 2) == 'sample 2 of the batch'
    assert sample_name(None) == 'a sample'
