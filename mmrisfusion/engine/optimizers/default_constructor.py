"""mmengine's default optimizer-wrapper constructor, fit for ``torch.compile``."""
import torch
from mmengine.optim import DefaultOptimWrapperConstructor as MMEngineConstructor
from mmengine.optim import OptimWrapper
from torch import nn

from mmrisfusion.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module(name='DefaultOptimWrapperConstructor')
class EagerUpdateOptimWrapperConstructor(MMEngineConstructor):
    """mmengine's ``DefaultOptimWrapperConstructor``; the update stays out of compiled graphs.

    mmengine's ``compile`` option compiles the whole ``train_step``, parameter update
    included. Traced, ``optimizer.step`` either fails (torch 2.14 with the ``ConfigDict``
    parameter groups a ``paramwise_cfg`` gives: "'UserDefinedDictVariable' object has no
    attribute 'items'") or recompiles at every iteration, since the learning rate, a Python
    float that the schedulers change every step, is guarded as a constant. The wrapper's
    ``update_params`` (backward, step, zero_grad) therefore runs eagerly
    (``torch.compiler.disable``): the forward and the loss are compiled, and their backward
    through AOT autograd. Without ``compile`` nothing changes. Registered under mmengine's
    name in our scope, so every config that names no ``constructor`` gets it.
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """Build the optimizer wrapper as mmengine does, with an eager ``update_params``.

        Args:
            model (nn.Module): The model to optimise.

        Returns:
            OptimWrapper: The optimizer wrapper.
        """
        optim_wrapper = super().__call__(model)
        optim_wrapper.update_params = torch.compiler.disable(optim_wrapper.update_params)
        return optim_wrapper
