"""AutocastOptimWrapper: bfloat16 autocast without a loss scaler, on the model's device."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

from mmrisfusion.engine.optimizers import AutocastOptimWrapper, autocast_device_type
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
