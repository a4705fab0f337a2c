"""The loss-term contract, written once: names, weights and the fusion terms' inputs.

Every loss term is an ``nn.Module`` with ``loss_weight`` and ``loss_name`` (``loss_...``,
its key in the loss dict, mmseg's convention). A *fusion* term is called as
``term(fused_y, vis_y, ir_y)`` on ``(B, 1, H, W)`` luma in [0, 1] and returns a scalar
(logged as ``loss_name``) or a dict of ``loss_*`` scalars (e.g. the parts of
``CLIPLanguageLoss(return_terms=True)``). ``RISFusion`` and ``FusionModel`` take any list of
fusion terms through :func:`build_loss_terms` and :func:`loss_terms_dict`.

A plugin term derives from :class:`BaseFusionLoss`::

    @MODELS.register_module()
    class MyTerm(BaseFusionLoss):
        def __init__(self, loss_weight=1.0, loss_name='loss_my'):
            super().__init__(loss_weight, loss_name)

        def forward(self, fused_y, vis_y, ir_y):
            self.check_lumas(fused_y, vis_y, ir_y)
            return self.loss_weight * (fused_y - ir_y).abs().mean()
"""
from typing import Dict, Iterable, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..utils.build import build_module


def check_loss_name(loss_name: object, owner: str) -> str:
    """``loss_name`` when it is a str starting with ``loss_``, else a clear error.

    Args:
        loss_name (object): The name to check.
        owner (str): Who carries the name (a class name), for the error.

    Returns:
        str: ``loss_name``.
    """
    if not isinstance(loss_name, str) or not loss_name.startswith('loss_'):
        raise ValueError(f"{owner}: loss_name must start with 'loss_' (its key in the loss "
                         f'dict, summed into the total), got {loss_name!r}')
    return loss_name


def at_least_float32(x: Tensor) -> Tensor:
    """``x`` in float32 when it is in a half type (fp16, bf16, e.g. under autocast).

    Loss sums over many pixels lose their digits in half precision; float64 stays float64.

    Args:
        x (Tensor): A floating-point tensor.

    Returns:
        Tensor: ``x`` or its float32 copy.
    """
    return x.float() if x.is_floating_point() and x.element_size() < 4 else x


def check_class_labels(seg_label: Tensor, num_classes: int, ignore_index: int,
                       owner: str) -> None:
    """Raise a clear error for labels outside ``0..num_classes-1`` and ``ignore_index``.

    Only labels on the CPU are checked, and not under ``torch.compile``: on an accelerator
    the check would need a host synchronisation every step, and in a compiled graph it
    would break the graph (our loaders give valid labels by construction).

    Args:
        seg_label (Tensor): Class labels of any shape.
        num_classes (int): Number of classes.
        ignore_index (int): The label that marks ignored pixels.
        owner (str): Who checks (a class name), for the error.
    """
    if seg_label.device.type != 'cpu' or torch.compiler.is_compiling():
        return
    bad = (seg_label != ignore_index) & ((seg_label < 0) | (seg_label >= num_classes))
    if bad.any():
        raise ValueError(f'{owner}: labels must be in 0..{num_classes - 1} or '
                         f'ignore_index={ignore_index}, found {seg_label[bad].unique().tolist()}')


class BaseLossTerm(nn.Module):
    """Base of every loss term: a weight and a validated name.

    Args:
        loss_weight (float): Factor on the loss.
        loss_name (str): Key of the loss in the loss dict; must start with ``loss_``.
    """

    def __init__(self, loss_weight: float, loss_name: str) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self._loss_name = check_loss_name(loss_name, type(self).__name__)

    @property
    def loss_name(self) -> str:
        """str: Key of this loss in the loss dict (mmseg's convention)."""
        return self._loss_name


class BaseFusionLoss(BaseLossTerm):
    """Base of fusion terms: ``forward(fused_y, vis_y, ir_y) -> Tensor | dict[str, Tensor]``.

    The three inputs are ``(B, 1, H, W)`` luma in [0, 1] of one shape: the fused image and
    its two sources, de-normalised by the segmentor. A subclass returns its weighted scalar
    (or a dict of weighted ``loss_*`` scalars) and calls :meth:`check_lumas` first.
    """

    def check_lumas(self, fused_y: Tensor, vis_y: Tensor, ir_y: Tensor) -> None:
        """Raise a clear error unless the three images are ``(B, 1, H, W)`` of one shape.

        Args:
            fused_y (Tensor): Fused luma.
            vis_y (Tensor): Visible luma.
            ir_y (Tensor): Infrared luma.
        """
        if fused_y.dim() != 4 or fused_y.shape[1] != 1 or not (
                fused_y.shape == vis_y.shape == ir_y.shape):
            raise ValueError(f'{type(self).__name__}: fused_y, vis_y and ir_y must be '
                             f'(B, 1, H, W) luma of one shape, got {tuple(fused_y.shape)}, '
                             f'{tuple(vis_y.shape)}, {tuple(ir_y.shape)}')


def build_loss_terms(terms: Union[None, Mapping, nn.Module, Sequence], owner: str
                     ) -> nn.ModuleList:
    """Build loss terms from modules or configs and check their names.

    Args:
        terms (dict | nn.Module | Sequence, optional): One term or a list of them, each a
            module or a config. None means no term.
        owner (str): Who owns the terms (e.g. ``'RISFusion.fusion_losses'``), for errors.

    Returns:
        nn.ModuleList: The terms, each with a valid and distinct ``loss_name``.
    """
    if terms is None:
        terms = []
    elif isinstance(terms, (Mapping, nn.Module)):
        terms = [terms]
    built = nn.ModuleList(build_module(term, owner) for term in terms)
    names = [check_loss_name(getattr(term, 'loss_name', None), f'{owner}: {type(term).__name__}')
             for term in built]
    if len(set(names)) != len(names):
        raise ValueError(f'{owner}: the loss terms need distinct loss_name values, got {names}')
    return built


def loss_terms_dict(terms: Iterable[nn.Module], fused_y: Tensor, vis_y: Tensor, ir_y: Tensor,
                    factor: Optional[float] = None) -> Dict[str, Tensor]:
    """Call every fusion term and gather the losses under their names.

    A term returning a scalar is logged as its ``loss_name``; one returning a dict adds each
    of its ``loss_*`` entries.

    Args:
        terms (Iterable[nn.Module]): Fusion terms, e.g. from :func:`build_loss_terms`.
        fused_y (Tensor): Fused luma ``(B, 1, H, W)`` in [0, 1].
        vis_y (Tensor): Visible luma ``(B, 1, H, W)`` in [0, 1].
        ir_y (Tensor): Infrared luma ``(B, 1, H, W)`` in [0, 1].
        factor (float, optional): A factor on every loss (RIS-FUSION's lambda). Defaults to
            None (none).

    Returns:
        dict[str, Tensor]: The losses, their sum the training loss.
    """
    losses: Dict[str, Tensor] = {}
    for term in terms:
        value = term(fused_y, vis_y, ir_y)
        if isinstance(value, Tensor):
            value = {term.loss_name: value}
        elif not isinstance(value, Mapping):
            raise TypeError(f'{type(term).__name__} returned {type(value).__name__}; a fusion '
                            'term returns a scalar Tensor or a dict of them')
        for name, loss in value.items():
            check_loss_name(name, f'{type(term).__name__} (a key of its returned dict)')
            if name in losses:
                raise ValueError(f'{type(term).__name__} returned {name!r}, which another '
                                 f'term already gave; the names must be distinct')
            losses[name] = loss if factor is None else factor * loss
    return losses
