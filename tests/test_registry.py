"""Every ``type`` in every shipped config (and the tests' own) resolves in a fresh process.

The child process imports nothing but ``mmrisfusion.registry`` and mmengine's Runner (which
every tool imports and which fills mmengine's own registries): the registry ``locations``
alone must find our types and mmseg's.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The shipped configs and the tests' own (tests/configs/).
CONFIGS = sorted(str(p.relative_to(REPO_ROOT)) for folder in ('configs', 'tests/configs')
                 for p in (REPO_ROOT / folder).glob('**/*.py'))

RESOLVER = r'''
import json, sys
from mmengine.config import Config
from mmengine import registry as mme
import mmengine.runner  # noqa: F401  (what tools/train.py imports: mmengine's own types)
import mmrisfusion.registry  # noqa: F401  (only the nodes, nothing registered up front)

# The registry a `type` belongs to, from the nearest key above it that names one.
BY_KEY = {
    'model': mme.MODELS, 'tta_model': mme.MODELS, 'data_preprocessor': mme.MODELS,
    'norm_cfg': mme.MODELS,
    'dataset': mme.DATASETS, 'pipeline': mme.TRANSFORMS, 'transforms': mme.TRANSFORMS,
    'sampler': mme.DATA_SAMPLERS, 'batch_sampler': mme.DATA_SAMPLERS,
    'collate_fn': mme.FUNCTIONS,
    'val_evaluator': mme.METRICS, 'test_evaluator': mme.METRICS,
    'default_hooks': mme.HOOKS, 'custom_hooks': mme.HOOKS,
    'optim_wrapper': mme.OPTIM_WRAPPERS, 'optimizer': mme.OPTIMIZERS,
    'param_scheduler': mme.PARAM_SCHEDULERS,
    'visualizer': mme.VISUALIZERS, 'vis_backends': mme.VISBACKENDS,
    'model_wrapper_cfg': mme.MODEL_WRAPPERS, 'init_cfg': mme.WEIGHT_INITIALIZERS,
}
HOOK_KEYS = ('default_hooks', 'custom_hooks')
LOOP_KEYS = ('train_cfg', 'val_cfg', 'test_cfg')


def walk(node, path, found):
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            found.append((path, node['type']))
        if isinstance(node.get('constructor'), str) and path[-1:] == ('optim_wrapper',):
            found.append((path + ('constructor',), node['constructor']))
        for key, value in node.items():
            walk(value, path + (key,), found)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            walk(value, path + (i,), found)


def registry_for(path):
    if path[-1:] == ('constructor',):
        return mme.OPTIM_WRAPPER_CONSTRUCTORS
    if len(path) == 1 and path[0] in LOOP_KEYS:
        return mme.LOOPS
    if path[0] in HOOK_KEYS:
        return mme.HOOKS
    for key in reversed(path):
        if key in BY_KEY:
            return BY_KEY[key]
        if isinstance(key, str) and key.endswith('_pipeline'):
            return mme.TRANSFORMS
        if isinstance(key, str) and key.endswith('_dataset'):
            return mme.DATASETS
    return None


report = {}
for cfg_path in sys.argv[1:]:
    cfg = Config.fromfile(cfg_path)
    scope = cfg.get('default_scope', 'mmrisfusion')
    found, errors = [], []
    walk(cfg.to_dict(), (), found)
    for path, type_name in found:
        where = '.'.join(map(str, path)) or '<root>'
        registry = registry_for(path)
        if registry is None:
            errors.append(f'{where}: no registry known for key path ({type_name})')
            continue
        with registry.switch_scope_and_registry(scope) as reg:
            if reg.get(type_name) is None:
                errors.append(f'{where}: {type_name!r} not found in the {registry.name} '
                              f'registry under scope {scope!r}')
    report[cfg_path] = dict(num_types=len(found), errors=errors)
print(json.dumps(report))
'''


@pytest.fixture(scope='module')
def resolution_report() -> dict:
    result = subprocess.run([sys.executable, '-c', RESOLVER, *CONFIGS], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_configs_found():
    for folder in ('configs/', 'tests/configs/'):
        assert any(c.startswith(folder) for c in CONFIGS), \
            f'no config found under {folder}: the registry test would not test them'


@pytest.mark.parametrize('config', CONFIGS)
def test_every_type_resolves(config, resolution_report):
    entry = resolution_report[config]
    assert entry['num_types'] > 0, f'{config} names no type at all'
    assert not entry['errors'], '\n'.join(entry['errors'])


def test_nodes_without_our_types_import_nothing_of_ours():
    """A loop or sampler lookup stays light: every node names ``locations``.

    ``mmrisfusion`` is in mmengine's ``MODULE2PACKAGE`` (for ``mmrisfusion::`` config bases);
    for such a scope mmengine answers a node without locations by importing all of
    mmrisfusion and mmseg.
    """
    code = ('import json, sys\nimport mmengine.runner\n'
            'from mmrisfusion.registry import DATA_SAMPLERS, LOOPS\n'
            "found = [LOOPS.get('EpochBasedTrainLoop'), DATA_SAMPLERS.get('DefaultSampler')]\n"
            "print(json.dumps([x is not None for x in found] + [m in sys.modules for m in "
            "('mmrisfusion.models', 'mmseg.models')]))")
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [True, True, False, False]
