"""Synthetic MM-RIS: official schema, determinism, and scenes that need text and both
modalities (each expression checked against the scene's objects independently)."""
import dataclasses
import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from mmengine.config import Config

from mmrisfusion.datasets import MM_RIS_COLUMNS, SyntheticMMRIS, make_synthetic_mmris
from mmrisfusion.datasets.synthetic_mmris import CATEGORIES, COLOURS
from mmrisfusion.datasets.transforms import swap_direction_words
from mmrisfusion.registry import TRANSFORMS

DEMO_CONFIG = str(Path(__file__).parents[2] / 'configs' / 'risfusion' /
                  'risfusion_swin-mini_minilm_1xb16-1k_mm-ris-synthetic-128x128.py')


def test_official_schema_and_row_groups(tiny_parquet):
    pf = pq.ParquetFile(str(tiny_parquet))
    schema = pf.schema_arrow
    assert tuple(schema.names) == MM_RIS_COLUMNS
    assert [str(schema.field(c).type) for c in MM_RIS_COLUMNS] == \
        ['string', 'binary', 'binary', 'string', 'binary']
    assert pf.metadata.num_rows == 24 and pf.metadata.num_row_groups == 3


def test_deterministic_by_seed(tmp_path):
    digests = []
    for name, seed in (('a', 3), ('b', 3), ('c', 4)):
        path = tmp_path / f'{name}.parquet'
        make_synthetic_mmris(str(path), 12, size=48, seed=seed)
        digests.append(hashlib.sha1(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1] != digests[2]
    small = list(SyntheticMMRIS(size=48, seed=3).iter_rows(5))
    large = list(SyntheticMMRIS(size=48, seed=3).iter_rows(12))
    assert [r['question'] for r in small] == [r['question'] for r in large[:5]]


def test_generator_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match='size must be at least 32'):
        SyntheticMMRIS(size=16)
    with pytest.raises(ValueError, match='same_category_ratio'):
        SyntheticMMRIS(same_category_ratio=1.5)
    with pytest.raises(ValueError, match='num_rows must be positive'):
        make_synthetic_mmris(str(tmp_path / 'x.parquet'), 0)


def _target(scene, mask):
    matches = [o for o in scene.objects if np.array_equal(o.mask, mask.astype(bool))]
    assert len(matches) == 1
    return matches[0]


def test_expressions_describe_exactly_the_target():
    """An independent reading of each expression's words against the scene's objects."""
    gen = SyntheticMMRIS(size=96, seed=5)
    nouns = {n: c for c, spec in CATEGORIES.items() for n in spec['nouns']}
    checked = 0
    for idx in range(60):
        scene = gen.scene(idx)
        for row in gen.scene_rows(idx):
            text = row['question']
            target = _target(scene, row['mask'])
            words = re.findall(r'[a-z]+', text)
            # the first noun names the target's category
            first = next(w for w in words if w in nouns)
            assert nouns[first] == target.category, text
            # a colour word is the target's colour, and VIS shows the target
            colours = [w for w in words if w in COLOURS]
            if colours:
                assert colours == [target.colour] and target.vis_visible, text
            # warm/hot/cold is the target's temperature (what IR shows)
            if {'warm', 'hot'} & set(words):
                assert target.warm, text
            if 'cold' in words:
                assert not target.warm, text
            # "on the left" / "leftmost" without a relation: extreme among its group
            side = re.search(r'(?:on the |^)(left|right)(?:most)?\b', text) \
                or re.search(r'\b(left|right)most\b', text)
            if side and ' of the ' not in text:
                group = [o for o in scene.objects if o.category == target.category and
                         (not ({'warm', 'hot', 'cold'} & set(words)) or o.warm == target.warm)]
                xs = [o.x for o in group]
                assert target.x == (min(xs) if side.group(1) == 'left' else max(xs)), text
            checked += 1
    assert checked > 100


def test_scenes_need_both_modalities_and_the_text():
    gen = SyntheticMMRIS(size=96, seed=0, same_category_ratio=0.5)
    rows = list(gen.iter_rows(300))
    hidden_in_vis = [r for r in rows if r['lighting'] == 'night']
    cold_in_day = [r for r in rows if r['lighting'] == 'day' and not r['warm']]
    assert len(hidden_in_vis) > 30 and len(cold_in_day) > 30
    for r in hidden_in_vis[:20]:
        m = r['mask'].astype(bool)
        assert r['vis'][m].mean() < 30  # dark in VIS
        if r['warm']:
            assert r['ir'][m].mean() > 150  # bright in IR
    for r in cold_in_day[:20]:
        m = r['mask'].astype(bool)
        around = r['ir'][~m].mean()
        assert abs(float(r['ir'][m].mean()) - around) < 60  # faint in IR
        assert r['vis'][m].std() > 0 or r['colour'] in COLOURS
    # the category alone does not find the target in a fixed share of scenes
    scenes = [gen.scene(i) for i in range(40)]
    dup = sum(any(sum(o.category == c for o in s.objects) >= 2 for c in CATEGORIES)
              for s in scenes)
    assert dup >= 18
    assert sum(gen._has_duplicate(i) for i in range(40)) == 20
    assert len({r['question'] for r in rows}) > 100


def test_demo_test_split_is_pinned(tmp_path):
    """The demo's test split is what `make_synthetic_mmris.py OUT --train 4000 --val 200
    --test 400 --size 128 --seed 0` wrote when its figures were published (issue 17): image
    names, expressions and masks, read back from the parquet file, hash to the same value."""
    path = tmp_path / 'mm_ris_test.parquet'
    make_synthetic_mmris(str(path), 400, size=128, seed=0, split='test')
    table = pq.read_table(str(path), columns=['image_name', 'question', 'segmentation'])
    digest = hashlib.sha256()
    for name, question, mask in zip(*(table.column(c).to_pylist() for c in table.column_names)):
        digest.update(name.encode())
        digest.update(question.encode())
        digest.update(np.ascontiguousarray(np.load(io.BytesIO(mask))).tobytes())
    assert digest.hexdigest() == \
        'ec3fd06117748e1ed29fa2668d126d26e26dfa43878003b3e316cef73edf571e'


def _mirrored(scene, size):
    """``scene`` flipped left-right: the objects' x, their masks and the trees."""
    objects = [dataclasses.replace(o, x=size - 1 - o.x, mask=o.mask[:, ::-1])
               for o in scene.objects]
    return dataclasses.replace(scene, vis=scene.vis[:, ::-1], ir=scene.ir[:, ::-1],
                               objects=objects, trees=[size - 1 - t for t in scene.trees])


def test_flip_word_swap_covers_the_generator_vocabulary():
    """Every description the generator can make of an object, with its direction words
    swapped, describes the same objects in the mirrored scene: RISRandomFlip keeps every
    expression of the synthetic set true ("leftmost", "the second ... from the left",
    "to the left of the car", "on the right", ...)."""
    size = 96
    gen = SyntheticMMRIS(size=size, seed=1)
    spatial = set()
    for idx in range(80):
        scene = gen.scene(idx)
        mirror = _mirrored(scene, size)
        for k, target in enumerate(scene.objects):
            original = gen._candidates(np.random.default_rng(k), scene, target)
            flipped = gen._candidates(np.random.default_rng(k), mirror, mirror.objects[k])
            # (the ordinal templates come left side first, so compare as sorted lists)
            assert sorted((swap_direction_words(p, 'horizontal'), ids)
                          for p, ids, _ in original) == sorted((p, ids) for p, ids, _ in flipped)
            spatial |= {p for p, _, _ in original}
    # the check above saw every kind of spatial phrase the templates make
    for phrase in ('leftmost', 'rightmost', 'on the left', 'on the right', 'second',
                   'third', 'from the left', 'from the right', 'to the left of', 'right of the'):
        assert any(phrase in p for p in spatial), phrase


def test_demo_training_flips_and_keeps_expressions_true():
    """The demo config's training pipeline flips about half the rows, before tokenising, and
    swaps their direction words along with the pixels."""
    cfg = Config.fromfile(DEMO_CONFIG)
    pipeline = cfg.train_dataloader.dataset.pipeline
    types = [t['type'] for t in pipeline]
    assert types.index('RISRandomFlip') < types.index('TokenizeText')
    flip = TRANSFORMS.build(pipeline[types.index('RISRandomFlip')])
    rows = [r for r in SyntheticMMRIS(size=64, seed=2).iter_rows(200)
            if re.search(r'left|right', r['question'])][:60]
    np.random.seed(0)
    flipped = 0
    for row in rows:
        out = flip(dict(vis=row['vis'].copy(), ir=row['ir'].copy(), gt_seg_map=row['mask'],
                        seg_fields=['gt_seg_map'], text=row['question']))
        if out['flip']:
            flipped += 1
            assert out['text'] == swap_direction_words(row['question'], 'horizontal')
            assert out['text'] != row['question']
            assert np.array_equal(out['gt_seg_map'], row['mask'][:, ::-1])
        else:
            assert out['text'] == row['question']
    assert len(rows) == 60 and 15 <= flipped <= 45
