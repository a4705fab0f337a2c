"""Registry nodes of mmrisfusion.

Each node is a child of mmseg's node of the same kind, so configs under
``default_scope='mmrisfusion'`` find our types first and mmseg's and mmengine's through the
parents. ``locations`` name both our modules and mmseg's: a fresh process that only imported
this file still finds every type on first lookup.
"""
from mmseg.registry import DATASETS as MMSEG_DATASETS
from mmseg.registry import HOOKS as MMSEG_HOOKS
from mmseg.registry import METRICS as MMSEG_METRICS
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.registry import TRANSFORMS as MMSEG_TRANSFORMS
from mmseg.registry import VISUALIZERS as MMSEG_VISUALIZERS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMSEG_MODELS, scope='mmrisfusion',
    locations=['mmrisfusion.models', 'mmseg.models'])
DATASETS = Registry(
    'dataset', parent=MMSEG_DATASETS, scope='mmrisfusion',
    locations=['mmrisfusion.datasets', 'mmseg.datasets'])
TRANSFORMS = Registry(
    'transform', parent=MMSEG_TRANSFORMS, scope='mmrisfusion',
    locations=['mmrisfusion.datasets.transforms', 'mmseg.datasets.transforms'])
METRICS = Registry(
    'metric', parent=MMSEG_METRICS, scope='mmrisfusion',
    locations=['mmrisfusion.evaluation', 'mmseg.evaluation'])
HOOKS = Registry(
    'hook', parent=MMSEG_HOOKS, scope='mmrisfusion',
    locations=['mmrisfusion.engine', 'mmseg.engine'])
VISUALIZERS = Registry(
    'visualizer', parent=MMSEG_VISUALIZERS, scope='mmrisfusion',
    locations=['mmrisfusion.visualization', 'mmseg.visualization'])

__all__ = ['MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'VISUALIZERS']
