"""Registry nodes of mmrisfusion.

Each node is a child of mmseg's node of the same kind, so configs under
``default_scope='mmrisfusion'`` find our types first and mmseg's and mmengine's through the
parents. ``locations`` name both our modules and mmseg's: a fresh process that only imported
this file still finds every type on first lookup. The kinds we register nothing in (loops,
optimizers, schedulers, ...) still get a node: the Runner builds them under our scope, and
without a node mmengine warns on every build that it fell back to its root registry.
"""
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import Registry
from mmseg import registry as mmseg

MODELS = Registry(
    'model', parent=mmseg.MODELS, scope='mmrisfusion',
    locations=['mmrisfusion.models', 'mmseg.models'])
DATASETS = Registry(
    'dataset', parent=mmseg.DATASETS, scope='mmrisfusion',
    locations=['mmrisfusion.datasets', 'mmseg.datasets'])
TRANSFORMS = Registry(
    'transform', parent=mmseg.TRANSFORMS, scope='mmrisfusion',
    locations=['mmrisfusion.datasets.transforms', 'mmseg.datasets.transforms'])
METRICS = Registry(
    'metric', parent=mmseg.METRICS, scope='mmrisfusion',
    locations=['mmrisfusion.evaluation', 'mmseg.evaluation'])
HOOKS = Registry(
    'hook', parent=mmseg.HOOKS, scope='mmrisfusion',
    locations=['mmrisfusion.engine', 'mmseg.engine.hooks'])
VISUALIZERS = Registry(
    'visualizer', parent=mmseg.VISUALIZERS, scope='mmrisfusion',
    locations=['mmrisfusion.visualization', 'mmseg.visualization'])
# Functions configs name (mmseg has no node of this kind). The Runner looks a dataloader's
# collate_fn up in mmengine's root registry, which searches its children only for a scoped
# name: configs write collate_fn=dict(type='mmrisfusion.ris_collate').
FUNCTIONS = Registry(
    'function', parent=MMENGINE_FUNCTIONS, scope='mmrisfusion',
    locations=['mmrisfusion.datasets', 'mmengine.dataset'])

# Nodes for the kinds the Runner builds from our configs with mmengine's or mmseg's types.
# Every node names locations: for a scope in mmengine's MODULE2PACKAGE (ours is, for
# `mmrisfusion::` config bases) a node without them makes mmengine import all of mmrisfusion
# and mmseg on its first lookup.
LOOPS = Registry('loop', parent=mmseg.LOOPS, scope='mmrisfusion', locations=['mmengine.runner'])
DATA_SAMPLERS = Registry('data sampler', parent=mmseg.DATA_SAMPLERS, scope='mmrisfusion',
                         locations=['mmengine.dataset'])
MODEL_WRAPPERS = Registry('model_wrapper', parent=mmseg.MODEL_WRAPPERS, scope='mmrisfusion',
                          locations=['mmseg.models'])
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=mmseg.WEIGHT_INITIALIZERS,
                               scope='mmrisfusion', locations=['mmseg.models'])
OPTIMIZERS = Registry('optimizer', parent=mmseg.OPTIMIZERS, scope='mmrisfusion',
                      locations=['mmseg.engine.optimizers'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=mmseg.OPTIM_WRAPPERS, scope='mmrisfusion',
                          locations=['mmrisfusion.engine', 'mmseg.engine.optimizers'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=mmseg.OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmrisfusion', locations=['mmrisfusion.engine.optimizers', 'mmseg.engine.optimizers'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=mmseg.PARAM_SCHEDULERS,
                            scope='mmrisfusion', locations=['mmseg.engine.schedulers'])
EVALUATOR = Registry('evaluator', parent=mmseg.EVALUATOR, scope='mmrisfusion',
                     locations=['mmseg.evaluation'])
VISBACKENDS = Registry('vis_backend', parent=mmseg.VISBACKENDS, scope='mmrisfusion',
                       locations=['mmseg.visualization'])
LOG_PROCESSORS = Registry('log_processor', parent=mmseg.LOG_PROCESSORS, scope='mmrisfusion',
                          locations=['mmseg.visualization'])

__all__ = [
    'MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'VISUALIZERS', 'FUNCTIONS', 'LOOPS',
    'DATA_SAMPLERS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'EVALUATOR', 'VISBACKENDS',
    'LOG_PROCESSORS'
]
