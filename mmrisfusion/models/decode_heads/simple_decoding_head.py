"""LAVT's ``SimpleDecoding``: a top-down decoder over the four language-aware features."""
from typing import List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from mmrisfusion.registry import MODELS
from mmrisfusion.utils.typing_utils import (
    ConfigType,
    OptConfigType,
    OptMultiConfig,
    SampleList,
)

from ..utils.predictions import class_argmax


@MODELS.register_module()
class SimpleDecodingHead(BaseDecodeHead):
    """LAVT's decoder: upsample, concatenate, two 3x3 conv-BN-ReLU, from the deepest level up.

    With inputs ``F_1..F_n`` (shallow to deep): ``x = F_n``; for ``i = n-1 .. 1``,
    ``x = convs(cat[up(x, size(F_i)), F_i])``; then a 1x1 conv to the classes at the
    resolution of ``F_1`` (1/4 of the image for Swin). Upsampling is bilinear with
    ``align_corners=True``, as published, also for the final resize to the label or image
    size done by :class:`BaseDecodeHead` (``loss_by_feat`` / ``predict_by_feat``).

    Call graph: ``loss`` -> ``forward`` -> ``loss_by_feat``;
    ``predict`` -> ``forward`` -> ``predict_by_feat``. The two ``*_by_feat`` compute what
    mmseg's do, without their host synchronisations (mmseg's ``acc_seg`` selects pixels with
    a boolean mask) and without mmseg's ``resize``, whose alignment warning breaks
    ``torch.compile`` graphs; ``acc_seg`` can be left out (``log_accuracy=False``).

    Initialisation: the published decoder is plain ``nn.Conv2d`` / ``nn.BatchNorm2d``, so its
    convolutions start from PyTorch's default (``kaiming_uniform_(a=sqrt(5))``, uniform in
    +-1/sqrt(fan_in)) and its norms at 1 and 0. That is the default here
    (``conv_init='pytorch'``): set when the head is built, as ``ConvModule`` applies its own
    init in its constructor only (``init_weights`` then applies ``init_cfg``, if any).
    ``conv_init='kaiming'`` keeps ``ConvModule``'s Kaiming normal (fan-out, ReLU gain),
    whose weights are 2.5 to 4 times larger (in standard deviation) at LAVT's widths.

    Args:
        in_channels (Sequence[int]): Channels of the inputs, shallow to deep.
            Defaults to (128, 256, 512, 1024) (Swin-B).
        channels (int | Sequence[int]): Hidden channels (LAVT: half the deepest level's), or
            one width per fusion step, deep to shallow (the last feeds the classifier): a
            fine level such as the backbone's detail map can take a narrower, cheaper step.
            Defaults to 512.
        num_classes (int): Output classes (background, referred object). Defaults to 2.
        in_index (Sequence[int]): Which backbone outputs to use. Defaults to (0, 1, 2, 3).
        norm_cfg (dict, optional): Normalisation after each 3x3 conv.
            Defaults to None (BatchNorm, as published; use SyncBN for multi-GPU training).
        act_cfg (dict, optional): Activation after each normalisation.
            Defaults to None (ReLU).
        dropout_ratio (float): Dropout before the classifier (LAVT has none).
            Defaults to 0.0.
        align_corners (bool): ``align_corners`` of every bilinear resize. Defaults to True.
        loss_decode (dict | list, optional): Segmentation loss(es).
            Defaults to None (the published two-class Dice, ``TwoClassDiceLoss``).
        ignore_index (int): Label ignored by the losses. Defaults to 255.
        conv_init (str): Initialisation of the fusion convolutions: 'pytorch' (PyTorch's
            default, as published) or 'kaiming' (mmcv ``ConvModule``'s). Defaults to
            'pytorch'.
        log_accuracy (bool): Whether the training losses include ``acc_seg``, the pixel
            accuracy in percent (mmseg's); computing and logging it costs a little every
            step. Defaults to True.
        init_cfg (dict | list, optional): Initialisation config. Defaults to None.
    """

    CONV_INITS = ('pytorch', 'kaiming')

    def __init__(self,
                 in_channels: Sequence[int] = (128, 256, 512, 1024),
                 channels: Union[int, Sequence[int]] = 512,
                 num_classes: int = 2,
                 in_index: Sequence[int] = (0, 1, 2, 3),
                 norm_cfg: OptConfigType = None,
                 act_cfg: OptConfigType = None,
                 dropout_ratio: float = 0.0,
                 align_corners: bool = True,
                 loss_decode: OptConfigType = None,
                 ignore_index: int = 255,
                 conv_init: str = 'pytorch',
                 log_accuracy: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        if conv_init not in self.CONV_INITS:
            raise ValueError(f'SimpleDecodingHead: conv_init must be one of {self.CONV_INITS}, '
                             f'got {conv_init!r}')
        if len(in_channels) < 2 or len(in_channels) != len(in_index):
            raise ValueError('SimpleDecodingHead needs at least two levels and one in_index '
                             f'per level; got in_channels={tuple(in_channels)}, '
                             f'in_index={tuple(in_index)}')
        widths = ([channels] * (len(in_channels) - 1) if isinstance(channels, int) else
                  list(channels))
        if len(widths) != len(in_channels) - 1:
            raise ValueError(f'SimpleDecodingHead: channels {tuple(widths)} needs one width per '
                             f'fusion step, {len(in_channels) - 1} for in_channels='
                             f'{tuple(in_channels)}')
        norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)
        act_cfg = act_cfg or dict(type='ReLU')
        # The scoped name finds our loss whatever the current default scope is.
        loss_decode = loss_decode or dict(type='mmrisfusion.TwoClassDiceLoss')
        super().__init__(
            list(in_channels),
            widths[-1],
            num_classes=num_classes,
            out_channels=num_classes,
            dropout_ratio=dropout_ratio,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            in_index=list(in_index),
            input_transform='multiple_select',
            loss_decode=loss_decode,
            ignore_index=ignore_index,
            align_corners=align_corners,
            init_cfg=init_cfg)
        self.fuse_convs = nn.ModuleList()
        deeper = in_channels[-1]
        for skip, width in zip(reversed(in_channels[:-1]), widths):
            self.fuse_convs.append(
                nn.Sequential(
                    self._conv_bn_relu(deeper + skip, width, norm_cfg, act_cfg),
                    self._conv_bn_relu(width, width, norm_cfg, act_cfg)))
            deeper = width
        self.conv_init = conv_init
        if conv_init == 'pytorch':  # undo the Kaiming init ConvModule has just applied
            for module in self.fuse_convs.modules():
                if isinstance(module, nn.Conv2d):
                    module.reset_parameters()
        self.log_accuracy = log_accuracy

    @staticmethod
    def _conv_bn_relu(in_channels: int, out_channels: int, norm_cfg: ConfigType,
                      act_cfg: ConfigType) -> ConvModule:
        """A bias-free 3x3 conv, then the norm and the activation."""
        return ConvModule(in_channels, out_channels, 3, padding=1, bias=False,
                          norm_cfg=norm_cfg, act_cfg=act_cfg)

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Decode the backbone features to class logits.

        Args:
            inputs (list[Tensor]): Backbone outputs, shallow to deep.

        Returns:
            Tensor: Logits (B, num_classes, H_1, W_1) at the resolution of the shallowest
            selected level.
        """
        feats = self._transform_inputs(inputs)
        x = feats[-1]
        for fuse, skip in zip(self.fuse_convs, reversed(feats[:-1])):
            if x.shape[-2:] != skip.shape[-2:]:
                x = F.interpolate(x, size=skip.shape[-2:], mode='bilinear',
                                  align_corners=self.align_corners)
            x = fuse(torch.cat([x, skip], dim=1))
        return self.cls_seg(x)

    def _resize(self, seg_logits: Tensor, size: Sequence[int]) -> Tensor:
        """Bilinear resize with the head's ``align_corners``."""
        return F.interpolate(seg_logits, size=tuple(size), mode='bilinear',
                             align_corners=self.align_corners)

    def loss_by_feat(self, seg_logits: Tensor, batch_data_samples: SampleList) -> dict:
        """The losses (and ``acc_seg``) of logits resized to the labels, as mmseg's.

        Args:
            seg_logits (Tensor): Logits (B, num_classes, h, w) from :meth:`forward`.
            batch_data_samples (list[SegDataSample]): Samples with ``gt_sem_seg``.

        Returns:
            dict[str, Tensor]: One entry per ``loss_name`` (summed when repeated), and
            ``acc_seg`` when ``log_accuracy``.
        """
        seg_label = self._stack_batch_gt(batch_data_samples)
        seg_logits = self._resize(seg_logits, seg_label.shape[2:])
        seg_weight = (self.sampler.sample(seg_logits, seg_label)
                      if self.sampler is not None else None)
        seg_label = seg_label.squeeze(1)
        losses_decode = (self.loss_decode if isinstance(self.loss_decode, nn.ModuleList) else
                         [self.loss_decode])
        losses = {}
        for loss_decode in losses_decode:
            value = loss_decode(seg_logits, seg_label, weight=seg_weight,
                                ignore_index=self.ignore_index)
            name = loss_decode.loss_name
            losses[name] = losses[name] + value if name in losses else value
        if self.log_accuracy:
            losses['acc_seg'] = pixel_accuracy(seg_logits, seg_label, self.ignore_index)
        return losses

    def predict_by_feat(self, seg_logits: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Logits resized to the batch's padded input size, as mmseg's.

        Args:
            seg_logits (Tensor): Logits (B, num_classes, h, w) from :meth:`forward`.
            batch_img_metas (list[dict]): Metainfo; the size is the first sample's
                ``pad_shape`` (else its ``img_shape``).

        Returns:
            Tensor: Logits (B, num_classes, H, W).
        """
        meta = batch_img_metas[0]
        size = meta['img_shape'] if isinstance(meta['img_shape'], torch.Size) else \
            meta.get('pad_shape', meta['img_shape'])
        return self._resize(seg_logits, size[:2])


def pixel_accuracy(seg_logits: Tensor, seg_label: Tensor, ignore_index: int) -> Tensor:
    """mmseg's top-1 ``accuracy`` in percent, without a host synchronisation.

    ``100 (correct + eps) / (valid + eps)`` over the pixels whose label is not
    ``ignore_index`` (``eps`` of float32, as mmseg, so an all-ignored batch gives 100).

    Args:
        seg_logits (Tensor): Logits (B, K, H, W).
        seg_label (Tensor): Labels (B, H, W).
        ignore_index (int): The label of ignored pixels.

    Returns:
        Tensor: A scalar without gradient.
    """
    with torch.no_grad():
        valid = seg_label != ignore_index
        correct = (class_argmax(seg_logits, 1) == seg_label) & valid
        eps = torch.finfo(torch.float32).eps
        return (correct.sum().float() + eps) * 100.0 / (valid.sum().float() + eps)
