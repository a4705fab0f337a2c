"""A holder for frozen pretrained networks that stay out of checkpoints and optimisers."""
from typing import Any, Callable

from torch import nn


class FrozenNet(nn.Module):
    """Base class holding a frozen pretrained network outside the module tree.

    Loss networks (CLIP, VGG19) are read from their own pretrained file every time a model is
    built. Registering them as sub-modules would copy hundreds of megabytes of unchanged
    weights into every training checkpoint, expose them to the optimiser constructor and make
    ``load_state_dict(strict=True)`` depend on them. The network is therefore stored as a
    plain attribute: it has no entry in ``state_dict()`` or ``parameters()``, never switches to
    train mode, and still follows ``.to()``, ``.cuda()`` and ``.float()`` of the enclosing
    model through :meth:`_apply`. Gradients still flow through it to its inputs.
    """

    def _hold(self, net: nn.Module) -> None:
        """Freeze ``net`` and keep it outside the module tree.

        Args:
            net (nn.Module): The pretrained network.
        """
        net.eval()
        for param in net.parameters():
            param.requires_grad_(False)
        self.__dict__['_frozen_net'] = net

    @property
    def net(self) -> nn.Module:
        """nn.Module: The frozen network (always in eval mode)."""
        return self.__dict__['_frozen_net']

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> 'FrozenNet':
        """Apply device and dtype moves to the held network as well."""
        super()._apply(fn, *args, **kwargs)
        self.net._apply(fn, *args, **kwargs)
        return self
