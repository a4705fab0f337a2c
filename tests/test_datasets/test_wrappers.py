"""MismatchedTextDataset: every row gets another image's expression, marked in the metainfo."""
import pytest

from mmrisfusion.datasets import (
    LoadRISAnnotation,
    LoadRISImages,
    MismatchedTextDataset,
    MMRISDataset,
    PackRISInputs,
    make_synthetic_splits,
)


@pytest.fixture(scope='module')
def test_split(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    make_synthetic_splits(str(root), num_rows=dict(test=24), size=64, seed=3)
    return str(root / 'mm_ris_test.parquet')


def make_dataset(path):
    return MMRISDataset(data_path=path, test_mode=True,
                        pipeline=[LoadRISImages(), LoadRISAnnotation(), PackRISInputs()])


def test_every_row_gets_another_images_expression(test_split):
    plain = make_dataset(test_split)
    wrapped = MismatchedTextDataset(make_dataset(test_split), seed=0)
    assert len(wrapped) == len(plain) == 24
    donors = wrapped._permutation
    assert sorted(donors) == list(range(24)), 'not a permutation'
    for index in range(24):
        packed = wrapped[index]['data_samples']
        original = plain[index]['data_samples']
        assert packed.img_name == original.img_name
        assert packed.metainfo['text_permuted'] is True
        assert packed.text == plain.get_data_info(donors[index])['text']
        assert plain.get_data_info(donors[index])['img_name'] != original.img_name
        assert (packed.gt_sem_seg.data == original.gt_sem_seg.data).all()
    assert 'text_permuted' not in plain[0]['data_samples'].metainfo


def test_permutation_is_fixed_by_seed(test_split):
    first = MismatchedTextDataset(make_dataset(test_split), seed=1)._permutation
    again = MismatchedTextDataset(make_dataset(test_split), seed=1)._permutation
    other = MismatchedTextDataset(make_dataset(test_split), seed=2)._permutation
    assert first == again and first != other


def test_refuses_when_one_image_holds_half_the_rows():
    with pytest.raises(ValueError, match='3 of the 4 rows show one image'):
        MismatchedTextDataset._derangement_across_images(['a', 'a', 'a', 'b'], seed=0)
