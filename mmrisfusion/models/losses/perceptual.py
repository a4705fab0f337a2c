"""LDFusion's perceptual term: VGG19 features of the fused image against the inputs' maximum."""
import os.path as osp
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrisfusion.registry import MODELS
from mmrisfusion.utils.checkpoint import load_weights_only

from ..utils.frozen import FrozenNet
from .loss_term import BaseFusionLoss

# torchvision's VGG19 ``features`` layout: conv widths, 'M' for max pooling.
VGG19_LAYOUT = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
                512, 512, 512, 512, 'M')
VGG19_HINT = ('the VGG19 file is torchvision\'s ImageNet checkpoint vgg19-dcbb9e9d.pth '
              '(https://download.pytorch.org/models/vgg19-dcbb9e9d.pth); download it on a '
              'machine with network access and give its local path')


def vgg19_features(num_layers: int, width_divisor: int = 1) -> nn.Sequential:
    """The first ``num_layers`` modules of torchvision's ``vgg19().features``.

    Args:
        num_layers (int): How many modules to keep (conv, ReLU and pooling each count one).
        width_divisor (int): Divide every conv width by this (a narrower random network for
            tests; 1 matches the checkpoint). Defaults to 1.

    Returns:
        nn.Sequential: The layers, indexed as in torchvision.
    """
    layers = []
    channels = 3
    for item in VGG19_LAYOUT:
        if item == 'M':
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            width = max(1, item // width_divisor)
            # ReLU not in place: the output of any module can be kept unchanged.
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
    if not 0 < num_layers <= len(layers):
        raise ValueError(f'VGG19 features have {len(layers)} layers, asked for {num_layers}')
    return nn.Sequential(*layers[:num_layers])


@MODELS.register_module()
class PerceptualMaxLoss(FrozenNet, BaseFusionLoss):
    """Sum over layers of ``MSE(phi(F), max(phi(V), phi(I)))`` with frozen VGG19 features.

    As published (docs/ldfusion.md#perceptual-term), the features are the outputs of
    torchvision modules 6, 11 and 22, i.e. relu2_1, relu3_1 and relu4_2, of gray images
    replicated to three channels, without ImageNet normalisation. The published wrapper keeps
    modules 5, 10 and 21 (labelled conv2_1, conv3_1, conv4_2), but torchvision's ReLUs work in
    place and overwrite them, so what it compares are the activations after the ReLU.
    ``layer_indices=(5, 10, 21)`` compares the conv outputs before the ReLU instead, what the
    published labels say (an option; it gives other values and gradients). The VGG weights
    come from a local torchvision checkpoint and stay out of the model's checkpoints
    (:class:`FrozenNet`).

    Args:
        checkpoint (str, optional): Path to torchvision's ``vgg19-dcbb9e9d.pth`` (or any state
            dict with ``features.N.weight`` keys). Required unless ``random_init``.
            Defaults to None.
        layer_indices (Sequence[int]): Indices of ``vgg19().features`` whose outputs are
            compared. Defaults to (6, 11, 22).
        width_divisor (int): Narrower network (only with ``random_init``). Defaults to 1.
        random_init (bool): Use random weights instead of a checkpoint: any frozen feature
            extractor gives a valid (if weaker) perceptual term; for tests and for runs without
            the VGG file. Defaults to False.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        loss_name (str): Name in the loss dict. Defaults to 'loss_perceptual'.
    """

    def __init__(self,
                 checkpoint: Optional[str] = None,
                 layer_indices: Sequence[int] = (6, 11, 22),
                 width_divisor: int = 1,
                 random_init: bool = False,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_perceptual') -> None:
        super().__init__(loss_weight, loss_name)
        self.layer_indices = tuple(sorted(set(layer_indices)))
        if not self.layer_indices:
            raise ValueError('layer_indices must name at least one VGG19 layer')
        features = vgg19_features(self.layer_indices[-1] + 1, width_divisor)
        if random_init:
            if checkpoint is not None:
                raise ValueError('PerceptualMaxLoss: give either checkpoint or random_init, '
                                 'not both')
        else:
            if width_divisor != 1:
                raise ValueError('width_divisor must be 1 with a VGG19 checkpoint')
            self._load(features, checkpoint)
        self.checkpoint = checkpoint
        self._hold(features)

    @staticmethod
    def _load(features: nn.Sequential, checkpoint: Optional[str]) -> None:
        """Load the ``features.*`` tensors of a torchvision VGG19 checkpoint."""
        if checkpoint is None:
            raise ValueError(f'PerceptualMaxLoss needs checkpoint=<path>: {VGG19_HINT} '
                             '(or random_init=True for an untrained stand-in).')
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'VGG19 checkpoint {checkpoint!r} does not exist: '
                                    f'{VGG19_HINT}.')
        state = load_weights_only(checkpoint)
        if isinstance(state, dict) and 'state_dict' in state:
            state = state['state_dict']
        wanted = features.state_dict().keys()
        found = {key: state[f'features.{key}'] for key in wanted if f'features.{key}' in state}
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise KeyError(f'{checkpoint!r} lacks VGG19 tensors '
                           f'{", ".join("features." + k for k in missing)}: {VGG19_HINT}.')
        features.load_state_dict(found)

    def features(self, images: Tensor) -> list:
        """VGG19 outputs at ``layer_indices`` of gray images replicated to RGB.

        Args:
            images (Tensor): ``(B, 1, H, W)`` images in [0, 1].

        Returns:
            list[Tensor]: One feature map per index, in increasing index order.
        """
        x = images.expand(-1, 3, -1, -1)
        outs = []
        for index, layer in enumerate(self.net):
            x = layer(x)
            if index in self.layer_indices:
                outs.append(x)
        return outs

    def forward(self, fused_y: Tensor, vis_y: Tensor, ir_y: Tensor) -> Tensor:
        """Compute the weighted perceptual max-feature loss.

        Args:
            fused_y (Tensor): ``(B, 1, H, W)`` fused luma in [0, 1].
            vis_y (Tensor): ``(B, 1, H, W)`` VIS luma in [0, 1].
            ir_y (Tensor): ``(B, 1, H, W)`` IR in [0, 1].

        Returns:
            Tensor: The scalar loss.
        """
        self.check_lumas(fused_y, vis_y, ir_y)
        with torch.no_grad():
            targets = [torch.maximum(v, i)
                       for v, i in zip(self.features(vis_y), self.features(ir_y))]
        loss = sum(F.mse_loss(f, t) for f, t in zip(self.features(fused_y), targets))
        return self.loss_weight * loss
