"""Our scope's default optimizer-wrapper constructor: mmengine's, with an eager update."""
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

from mmrisfusion.engine.optimizers import EagerUpdateOptimWrapperConstructor
from mmrisfusion.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmrisfusion.utils import register_all_modules


def test_is_the_default_of_our_scope_and_updates_as_mmengines():
    register_all_modules()
    assert OPTIM_WRAPPER_CONSTRUCTORS.get('DefaultOptimWrapperConstructor') is \
        EagerUpdateOptimWrapperConstructor
    cfg = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.5),
               paramwise_cfg=dict(custom_keys={'bias': dict(lr_mult=0.0)}))
    torch.manual_seed(0)
    initial = nn.Linear(3, 2)
    updated = []
    for constructor in ('DefaultOptimWrapperConstructor',
                        'mmengine.DefaultOptimWrapperConstructor'):
        model = nn.Linear(3, 2)
        model.load_state_dict(initial.state_dict())
        optim_wrapper = build_optim_wrapper(model, dict(cfg, constructor=constructor))
        optim_wrapper.update_params(model(torch.ones(4, 3)).square().sum())
        updated.append(model)
    ours, theirs = updated
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)
    assert not torch.equal(ours.weight, initial.weight)
    assert torch.equal(ours.bias, initial.bias)  # the paramwise_cfg applies
