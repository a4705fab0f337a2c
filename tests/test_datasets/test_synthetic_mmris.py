"""Synthetic MM-RIS: official schema, determinism, and scenes that need text and both
modalities (each expression checked against the scene's objects independently)."""
import hashlib
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from mmrisfusion.datasets import MM_RIS_COLUMNS, SyntheticMMRIS, make_synthetic_mmris
from mmrisfusion.datasets.synthetic_mmris import CATEGORIES, COLOURS


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
