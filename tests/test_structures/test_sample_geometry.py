"""Sample geometry: padding and flips undone as mmseg's and our pipelines record them."""
import numpy as np
import pytest
import torch
from mmseg.datasets.transforms import RandomFlip

from mmrisfusion.datasets import RISRandomFlip, RISResizePad
from mmrisfusion.structures import (
    FLIP_AXES,
    crop_to,
    padding_of,
    to_original_frame,
    undo_flip,
    unpad,
)

IMAGE = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)  # (H, W, C), no symmetry


@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_undoes_every_direction_of_mmseg_random_flip(direction):
    """mmseg's RandomFlip (mmcv's directions, 'diagonal' flips both axes) and its keys."""
    results = RandomFlip(prob=1.0, direction=direction)(
        dict(img=IMAGE.copy(), gt_seg_map=IMAGE[..., 0].copy(), seg_fields=['gt_seg_map']))
    assert results['flip'] and results['flip_direction'] == direction
    meta = {k: results[k] for k in ('flip', 'flip_direction')}
    flipped = torch.from_numpy(results['img'].copy()).permute(2, 0, 1)
    assert not torch.equal(flipped, torch.from_numpy(IMAGE).permute(2, 0, 1))
    assert torch.equal(undo_flip(flipped, meta), torch.from_numpy(IMAGE).permute(2, 0, 1))
    np.testing.assert_array_equal(undo_flip(results['gt_seg_map'], meta), IMAGE[..., 0])


def test_no_flip_and_bad_direction():
    image = torch.rand(2, 3, 4)
    assert undo_flip(image, dict(flip=False, flip_direction=None)) is image
    assert undo_flip(image, None) is image and undo_flip(image, {}) is image
    with pytest.raises(ValueError, match=r"x\.png: flip is set but flip_direction is 'sideways'"):
        undo_flip(image, dict(img_name='x.png', flip=True, flip_direction='sideways'))
    with pytest.raises(ValueError, match='flip_direction is None'):
        undo_flip(image, dict(flip=True))
    assert set(FLIP_AXES) == {'horizontal', 'vertical', 'diagonal'}


def test_padding_keys_and_crops():
    assert padding_of(None) == padding_of({}) == (0, 0, 0, 0)
    assert padding_of(dict(padding_size=[1, 2, 3, 4])) == (1, 2, 3, 4)
    # mmseg's stack_batch without samples names it img_padding_size, which wins
    assert padding_of(dict(padding_size=(1, 2, 3, 4), img_padding_size=(0, 1, 0, 1))) == (
        0, 1, 0, 1)
    with pytest.raises(ValueError, match=r'y\.png: padding_size must be'):
        padding_of(dict(img_name='y.png', padding_size=(1, 2)))
    padded = torch.arange(10 * 12).view(1, 10, 12)
    meta = dict(padding_size=(1, 2, 3, 4))  # left, right, top, bottom
    assert torch.equal(unpad(padded, meta), padded[:, 3:6, 1:10])
    # a source that lacks the batch padding added later: cut at the (top, left) offset
    assert torch.equal(crop_to(padded[:, :8, :11], (3, 9), meta), padded[:, 3:6, 1:10])


@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_batch_padding_after_a_flip(direction):
    """mmseg's order: flip in the pipeline, pad at the bottom/right in the preprocessor."""
    original = torch.rand(2, 5, 7)
    flipped = original.flip(dims=FLIP_AXES[direction])
    padded = torch.nn.functional.pad(flipped, (0, 3, 0, 2), value=-1.0)
    meta = dict(flip=True, flip_direction=direction, padding_size=(0, 3, 0, 2))
    assert torch.equal(to_original_frame(padded, meta), original)


@pytest.mark.parametrize('direction', ['horizontal', 'vertical'])
def test_pipeline_padding_before_a_flip(direction):
    """RISResizePad pads, then RISRandomFlip moves the padding to the other side."""
    vis = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    results = dict(vis=vis, ir=vis[..., :1].copy(), seg_fields=[], img_shape=(30, 40))
    results = RISResizePad(scale=(48, 48))(results)
    resized = results['vis'][:36, :48].copy()  # 40 wide -> 48, 30 high -> 36, padded below
    results = RISRandomFlip(prob=1.0, direction=direction, swap_words=False)(results)
    image = torch.from_numpy(results['vis']).permute(2, 0, 1)
    assert torch.equal(to_original_frame(image, results),
                       torch.from_numpy(resized).permute(2, 0, 1))
