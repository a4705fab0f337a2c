"""Our optimizer wrappers: AutocastOptimWrapper (bfloat16 autocast without a loss scaler, on
the model's device) and the scope's default constructor (mmengine's, with an eager update)."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

from mmrisfusion.engine.optimizers import (
    AutocastOptimWrapper,
    EagerUpdateOptimWrapperConstructor,
    autocast_device_type,
)
from mmrisfusion.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmrisfusion.utils import register_all_modules


def test_builds_from_config_and_autocasts_the_forward():
    register_all_modules()  # the default scope of our configs
    model = nn.Linear(8, 4)
    wrapper = build_optim_wrapper(model, dict(type='AutocastOptimWrapper',
                                              optimizer=dict(type='SGD', lr=0.1)))
    assert isinstance(wrapper, AutocastOptimWrapper) and wrapper.cast_dtype == torch.bfloat16
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 8))
    assert out.dtype == torch.bfloat16
    loss = out.float().square().mean()
    wrapper.update_params(loss)  # no scaler: plain backward and step
    assert model.weight.grad is None or model.weight.grad.dtype == torch.float32
    assert model(torch.randn(2, 8)).dtype == torch.float32  # outside the context: float32


def test_refuses_float16():
    with pytest.raises(ValueError, match='AmpOptimWrapper'):
        AutocastOptimWrapper(dtype='float16', optimizer=torch.optim.SGD(
            nn.Linear(2, 2).parameters(), lr=0.1))


def test_device_type_of_the_model():
    assert autocast_device_type(nn.Linear(2, 2)) == 'cpu'
    assert autocast_device_type(nn.ReLU()) == 'cpu'


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
