"""list_models/get_model over the shipped configs."""
import pytest

import mmrisfusion
from mmrisfusion.models.segmentors import RISFusion


def test_list_models_names_the_shipped_leaf_configs():
    names = mmrisfusion.list_models()
    assert {'risfusion_swin-b', 'risfusion_swin-b_bert_10e_mm-ris-480',
            'risfusion_tiny_test', 'ldfusion_munit_100e_roadscene-224'} <= set(names)
    assert not [name for name in names if name in ('default_runtime', 'schedule_10e')]
    assert mmrisfusion.list_models('ldfusion*') == sorted(
        name for name in names if name.startswith('ldfusion'))


def test_get_model_builds_by_name():
    model = mmrisfusion.get_model('risfusion_tiny_test')
    assert isinstance(model, RISFusion)
    assert not model.training


def test_get_model_unknown_name():
    with pytest.raises(KeyError, match="no shipped config named 'risfusion_nope'.*risfusion"):
        mmrisfusion.get_model('risfusion_nope')
