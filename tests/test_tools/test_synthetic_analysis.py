"""tools/analysis_tools/ris_by_kind.py (scores per kind of expression) and
probe_position.py's ridge probe, on small synthetic inputs."""
import json

import cv2
import numpy as np
import pytest

from mmrisfusion.datasets import make_synthetic_mmris
from mmrisfusion.datasets.synthetic_mmris import EXPRESSION_KINDS, SyntheticMMRIS, expression_kind


@pytest.mark.parametrize('text,kind', [
    ('the second warm dog from the right', 'position'),
    ('the rightmost bicycle', 'position'),
    ('cold bike on the left', 'position'),
    ('the bike to the right of the person', 'relation'),
    ('dog left of the car', 'relation'),
    ('the car near the tree', 'relation'),
    ('the smaller bicycle', 'size'),
    ('the vehicle that is green', 'colour'),
    ('the hot pedestrian', 'temperature'),
    ('dog', 'category'),
])
def test_expression_kind(text, kind):
    assert expression_kind(text) == kind


def test_generator_makes_every_kind():
    rows = SyntheticMMRIS(size=64, seed=0).iter_rows(300)
    assert {expression_kind(r['question']) for r in rows} == set(EXPRESSION_KINDS)


def test_scores_by_kind(tmp_path, load_repo_script):
    """Perfect masks on even rows, empty ones on odd rows: IoU 1 and 0 per kind."""
    ris_by_kind = load_repo_script('tools/analysis_tools/ris_by_kind.py')
    parquet = tmp_path / 'test.parquet'
    make_synthetic_mmris(str(parquet), 30, size=48, seed=0, split='test')
    rows = list(SyntheticMMRIS(size=48, seed=0).iter_rows(30, 'test'))
    (tmp_path / 'results' / 'masks').mkdir(parents=True)
    samples = []
    for idx, row in enumerate(rows):
        mask = row['mask'] * 255 if idx % 2 == 0 else np.zeros_like(row['mask'])
        cv2.imwrite(str(tmp_path / 'results' / 'masks' / f's{idx}.png'), mask)
        samples.append(dict(stem=f's{idx}', img_name=row['image_name'], sample_idx=idx,
                            text=row['question']))
    (tmp_path / 'results' / 'samples.json').write_text(json.dumps(samples))
    scores = ris_by_kind.scores_by_kind(tmp_path / 'results', parquet)
    assert scores['all'] == {'n': 30, 'mIoU': 50.0, 'P@0.5': 50.0}
    for kind in EXPRESSION_KINDS:
        idxs = [i for i, r in enumerate(rows) if expression_kind(r['question']) == kind]
        if idxs:
            share = 100 * sum(i % 2 == 0 for i in idxs) / len(idxs)
            assert scores[kind]['n'] == len(idxs)
            assert scores[kind]['mIoU'] == pytest.approx(share)
    samples[3]['text'] = 'another expression'
    (tmp_path / 'results' / 'samples.json').write_text(json.dumps(samples))
    with pytest.raises(ValueError, match='sample 3'):
        ris_by_kind.scores_by_kind(tmp_path / 'results', parquet)


def test_position_probe_finds_a_linear_code_and_no_more(load_repo_script):
    probe = load_repo_script('tools/analysis_tools/probe_position.py')
    rng = np.random.default_rng(0)
    x = rng.uniform(size=400)
    noise = rng.normal(size=(400, 16))
    coded = np.concatenate([noise, x[:, None] * 3 + 1], 1)
    assert probe.probe_r2(coded[:200], x[:200], coded[200:], x[200:]) > 0.99
    assert probe.probe_r2(noise[:200], x[:200], noise[200:], x[200:]) < 0.1


def test_side_swap_scores(load_repo_script):
    side_swap = load_repo_script('tools/analysis_tools/side_swap.py')
    left, right = np.zeros((4, 6), bool), np.zeros((4, 6), bool)
    left[:, :2], right[:, 4:] = True, True
    both = left | right
    # A model that reads the side: the swap moves the mask to the other object.
    assert side_swap.swap_scores([left], [right], [left]) == dict(
        overlap=0.0, iou_text=1.0, iou_swapped=0.0)
    # One that segments every object of the category: the same mask twice.
    assert side_swap.swap_scores([both, both], [both, both], [left, right]) == dict(
        overlap=1.0, iou_text=0.5, iou_swapped=0.5)
    with pytest.raises(ValueError, match='1, 0, 1'):
        side_swap.swap_scores([left], [], [left])
