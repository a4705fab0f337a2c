"""RIS-FUSION's text-conditioned UNet fuser (docs/risfusion.md#unetfuser).

The fuser works on luminance: it fuses the Y channel of the visible image with the infrared
intensity into a new Y, then recomposes RGB with the visible chroma. Two encoders (Y and IR)
give four levels (H, H/2, H/4, H/8 with c, 2c, 4c, 8c channels); each level's pair of maps is
fused by a block (:mod:`mmrisfusion.models.layers.fusion_blocks`): the configured block at
``inject_levels``, :class:`AverageFusion` elsewhere; a UNet decoder turns the fused levels
into the new luminance.

Parameter names are those of the published ``UNetFuser`` (``net.y_inc.block.0.weight``, ...,
``net.lang_l3.pwam.q_proj.weight``, ``net.txt.proj.weight``, plus the ``mean_vis``,
``std_vis``, ``mean_ir``, ``std_ir`` buffers), so an official ``prefusion_model`` state dict
loads unchanged (see :func:`mmrisfusion.models.utils.convert_official_fuser`).
"""
import copy
import inspect
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from torch import Tensor

from mmrisfusion.registry import MODELS
from mmrisfusion.utils.typing_utils import ConfigType, OptConfigType

from ..layers.fusion_blocks import AverageFusion
from ..utils.activation_checkpoint import checkpoint_call
from ..utils.color import (
    IMAGENET_MEAN_01,
    IMAGENET_STD_01,
    denormalize,
    normalize,
    rgb_to_luma,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from .constants import NORM_STATS, NUM_LEVELS


class DoubleConv(nn.Module):
    """``(Conv3x3 without bias, norm, ReLU) x 2``, the UNet unit.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        norm_cfg (dict, optional): The norm after each convolution (mmcv
            ``build_norm_layer``). Defaults to None, meaning ``dict(type='BN')`` (published).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: OptConfigType = None) -> None:
        super().__init__()
        norm_cfg = norm_cfg or dict(type='BN')
        # Sequential indices (block.0, block.1, ...) are the published parameter names.
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            build_norm_layer(norm_cfg, out_channels)[1], nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            build_norm_layer(norm_cfg, out_channels)[1], nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        """Apply the two convolutions."""
        return self.block(x)


class Down(nn.Module):
    """Max-pool by 2, then :class:`DoubleConv`.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        norm_cfg (dict, optional): The norm of the :class:`DoubleConv`. Defaults to None
            (BN).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: OptConfigType = None) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_channels, out_channels, norm_cfg)

    def forward(self, x: Tensor) -> Tensor:
        """Halve the resolution and convolve."""
        return self.conv(self.pool(x))


class Up(nn.Module):
    """Transposed-conv upsampling by 2, centre pad/crop to the skip, concat, :class:`DoubleConv`.

    Args:
        in_channels (int): Channels of the coarse input; the upsampled map has half of them.
        out_channels (int): Output channels. The skip must have ``in_channels // 2``.
        norm_cfg (dict, optional): The norm of the :class:`DoubleConv`. Defaults to None
            (BN).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: OptConfigType = None) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels, norm_cfg)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """Upsample ``x``, match it to ``skip``'s size and decode ``concat[skip, x]``."""
        x = self.up(x)
        dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
        if dh or dw:  # odd sizes: negative padding crops
            x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class TextAdapter(nn.Module):
    """``LayerNorm(Linear(text_feats))``: word features to the fuser's token width.

    Args:
        text_dim (int): Width of the text encoder's features. Defaults to 768.
        token_dim (int): Width of the adapted tokens. Defaults to 256.
    """

    def __init__(self, text_dim: int = 768, token_dim: int = 256) -> None:
        super().__init__()
        self.text_dim = text_dim
        self.proj = nn.Linear(text_dim, token_dim)
        self.norm = nn.LayerNorm(token_dim)

    def forward(self, text_feats: Tensor) -> Tensor:
        """Project ``(B, T, text_dim)`` features to ``(B, T, token_dim)`` tokens."""
        if text_feats.dim() != 3 or text_feats.shape[2] != self.text_dim:
            raise ValueError(f'text_feats must be (B, T, {self.text_dim}), got '
                             f'{tuple(text_feats.shape)}: set the fuser\'s text_dim to the '
                             'text encoder\'s width')
        return self.norm(self.proj(text_feats))


class LangUNet(nn.Module):
    """The luminance UNet of :class:`UNetFuser`: ``(Y, IR, words) -> fused Y``.

    Level ``k`` (1..4) has ``base_channels * 2**(k-1)`` channels at ``H / 2**(k-1)``. Its
    fusion block is ``lang_l{k}`` (the published name; an :class:`AverageFusion` without
    parameters at levels outside ``inject_levels``).

    Args:
        base_channels (int): Channels ``c`` of the first level. Defaults to 32.
        text_dim (int): Width of the incoming word features. Defaults to 768.
        token_dim (int): Width of the adapted word tokens. Defaults to 256.
        num_heads (int): Attention heads given to blocks that declare ``num_heads``, unless
            their config sets them. Defaults to 4.
        inject_levels (Sequence[int]): Levels (1..4) fused by ``fusion_block``.
            Defaults to (3, 4).
        fusion_block (dict): Config of the block at ``inject_levels``, a
            :class:`~mmrisfusion.models.layers.BaseFusionBlock`; the level's ``in_channels``
            and ``token_dim`` (and ``num_heads``) are filled in where the block's constructor
            declares them. Defaults to None, meaning ``dict(type='LangGatedFusion')``.
        norm_cfg (dict, optional): The norm of every convolution unit, and of fusion blocks
            that declare ``norm_cfg`` (unless their config sets it). Defaults to None, meaning
            ``dict(type='BN')`` (published); ``dict(type='SyncBN')`` for multi-GPU training.
        with_cp (bool): Activation checkpointing of every unit and fusion block
            (:func:`~mmrisfusion.models.utils.checkpoint_call`). Defaults to False.
        channels_last (bool): Keep the convolution weights in channels-last memory format,
            so every feature map follows (see :class:`UNetFuser`). Defaults to True.
    """

    def __init__(self, base_channels: int = 32, text_dim: int = 768, token_dim: int = 256,
                 num_heads: int = 4, inject_levels: Sequence[int] = (3, 4),
                 fusion_block: Optional[ConfigType] = None, norm_cfg: OptConfigType = None,
                 with_cp: bool = False, channels_last: bool = True) -> None:
        super().__init__()
        self.with_cp = with_cp
        fusion_block = dict(type='LangGatedFusion') if fusion_block is None else fusion_block
        levels = tuple(inject_levels)
        if any(level not in range(1, NUM_LEVELS + 1) for level in levels):
            raise ValueError(f'inject_levels must be levels 1..{NUM_LEVELS}, got {levels}')
        self.inject_levels = levels
        widths = [base_channels * 2**k for k in range(NUM_LEVELS)]
        for prefix in ('y', 'i'):
            self.add_module(f'{prefix}_inc', DoubleConv(1, widths[0], norm_cfg))
            for k in range(1, NUM_LEVELS):
                self.add_module(f'{prefix}_d{k}', Down(widths[k - 1], widths[k], norm_cfg))
        self.requires_text = False
        for level, width in enumerate(widths, start=1):
            if level in levels:
                block = self._build_block(fusion_block, width, token_dim, num_heads, norm_cfg)
                self.requires_text |= block.requires_text
            else:
                block = AverageFusion(width)
            self.add_module(f'lang_l{level}', block)
        for k in range(NUM_LEVELS - 1, 0, -1):
            self.add_module(f'u{k}', Up(widths[k], widths[k - 1], norm_cfg))
        self.outc = nn.Conv2d(widths[0], 1, 1)
        # Only text-conditioned blocks consume tokens; without them the adapter would be a
        # set of unused parameters (DDP errors, dead weights).
        self.txt = TextAdapter(text_dim, token_dim) if self.requires_text else None
        if channels_last:
            # Loading a state dict copies into these tensors and keeps their layout.
            self.to(memory_format=torch.channels_last)

    @staticmethod
    def _build_block(cfg: ConfigType, in_channels: int, token_dim: int, num_heads: int,
                     norm_cfg: OptConfigType) -> nn.Module:
        """Build one level's fusion block from ``cfg``, filling in what it declares."""
        cfg = copy.deepcopy(dict(cfg))
        block_type = cfg.get('type')
        block_cls = block_type if isinstance(block_type, type) else MODELS.get(block_type)
        if block_cls is None:
            raise KeyError(f'fusion_block type {block_type!r} is not registered in '
                           'mmrisfusion.registry.MODELS')
        if not isinstance(getattr(block_cls, 'requires_text', None), bool):
            raise TypeError(f'fusion_block {block_cls.__name__} must say in a bool class '
                            'attribute requires_text whether it needs the words; derive it '
                            'from mmrisfusion.models.layers.BaseFusionBlock')
        params = inspect.signature(block_cls).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for name, value in (('in_channels', in_channels), ('token_dim', token_dim)):
            if name not in params and not takes_any:
                continue
            if cfg.get(name, value) != value:
                raise ValueError(f'fusion_block sets {name}={cfg[name]}, but the fuser fills '
                                 f'it in per level ({value} here); remove it from the config')
            cfg[name] = value
        if 'num_heads' in params or takes_any:
            cfg.setdefault('num_heads', num_heads)
        if norm_cfg is not None and ('norm_cfg' in params or takes_any):
            cfg.setdefault('norm_cfg', norm_cfg)
        return MODELS.build(cfg)

    def forward(self, y: Tensor, ir: Tensor, text_feats: Optional[Tensor] = None,
                text_mask: Optional[Tensor] = None) -> Tensor:
        """Fuse the two luminance images.

        Args:
            y (Tensor): Visible luma ``(B, 1, H, W)`` in [0, 1].
            ir (Tensor): Infrared intensity ``(B, 1, H, W)`` in [0, 1].
            text_feats (Tensor, optional): Word features ``(B, T, text_dim)``; required
                when a fusion block is text-conditioned. Defaults to None.
            text_mask (Tensor, optional): ``(B, T)``, nonzero for words. Defaults to None.

        Returns:
            Tensor: The fused luma ``(B, 1, H, W)`` in [0, 1].
        """
        tokens = None
        if self.txt is not None:
            if text_feats is None or text_mask is None:
                raise ValueError('this fuser has text-conditioned blocks at levels '
                                 f'{self.inject_levels}: pass text_feats and text_mask')
            tokens = self.txt(text_feats)

        def run(name: str, *args) -> Tensor:
            return checkpoint_call(getattr(self, name), *args, enabled=self.with_cp)

        y_feats, i_feats = [run('y_inc', y)], [run('i_inc', ir)]
        for k in range(1, NUM_LEVELS):
            y_feats.append(run(f'y_d{k}', y_feats[-1]))
            i_feats.append(run(f'i_d{k}', i_feats[-1]))
        fused = [
            run(f'lang_l{level}', yf, itf, tokens, text_mask)
            for level, (yf, itf) in enumerate(zip(y_feats, i_feats), start=1)
        ]
        x = fused[-1]
        for k in range(NUM_LEVELS - 1, 0, -1):
            x = run(f'u{k}', x, fused[k - 1])
        return torch.sigmoid(self.outc(x))


@MODELS.register_module()
class UNetFuser(nn.Module):
    """RIS-FUSION's pre-fusion network: normalised VIS, IR and words -> fused RGB.

    1. De-normalise both inputs with their own statistics and clamp to [0, 1]; VIS to
       YCbCr (BT.601 full range), IR to luma (a 1-channel IR is used as it is).
    2. :class:`LangUNet` fuses Y and IR into ``Yf`` in [0, 1].
    3. Recompose RGB from ``(Yf, Cb_vis, Cr_vis)``, clamp to [0, 1] and normalise with the
       VIS statistics: the image the RIS network eats (docs/design.md).

    The statistics are persistent buffers, as in the published model, so a checkpoint
    carries the normalisation it was trained with.

    Args:
        base_channels (int): Channels of the first UNet level (``c``). Defaults to 32.
        text_dim (int): Width of the text encoder's features. Defaults to 768.
        token_dim (int): Width of the adapted word tokens. Defaults to 256.
        num_heads (int): Heads of the pixel-word attention. Defaults to 4.
        inject_levels (Sequence[int]): Levels (1..4, i.e. H..H/8) fused by
            ``fusion_block``; the others are averaged. Defaults to (3, 4).
        fusion_block (dict): Config of the block at ``inject_levels``, e.g.
            ``dict(type='ConcatConvFusion')`` for a text-free ablation.
            Defaults to None, meaning ``dict(type='LangGatedFusion')``.
        vis_mean (Sequence[float]): VIS mean in the 0..1 scale. Defaults to ImageNet's
            (0.485, 0.456, 0.406).
        vis_std (Sequence[float]): VIS std in the 0..1 scale. Defaults to ImageNet's
            (0.229, 0.224, 0.225).
        ir_mean (Sequence[float]): IR mean in the 0..1 scale, 3 values for a 3-channel IR
            or 1 for a 1-channel one. Defaults to ImageNet's (0.485, 0.456, 0.406).
        ir_std (Sequence[float]): IR std in the 0..1 scale. Defaults to ImageNet's
            (0.229, 0.224, 0.225).
        norm_cfg (dict, optional): The norm of the UNet's convolution units (and of fusion
            blocks that declare one), e.g. ``dict(type='SyncBN')`` to follow the decode
            head's under multi-GPU training; the parameter names stay the published ones.
            Defaults to None, meaning ``dict(type='BN')`` (published).
        with_cp (bool): Activation checkpointing of the UNet's units and fusion blocks:
            saves memory, costs a second forward of each in the backward. Outputs, gradients
            and BN statistics are those without it. Defaults to False.
        channels_last (bool): The UNet's convolution weights, hence its feature maps, in
            channels-last memory format: oneDNN's fast path for these narrow full-resolution
            convolutions (forward + backward of the fuser 1.15x in float32 at 480x480,
            c = 32; 1.24x in bfloat16 for the demo's c = 8 at 128x128, on this project's
            CPU). Not in the published code; the outputs are the same within float
            rounding (a few 1e-6). False gives the published contiguous layout.
            Defaults to True.
    """

    def __init__(self, base_channels: int = 32, text_dim: int = 768, token_dim: int = 256,
                 num_heads: int = 4, inject_levels: Sequence[int] = (3, 4),
                 fusion_block: Optional[ConfigType] = None,
                 vis_mean: Sequence[float] = IMAGENET_MEAN_01,
                 vis_std: Sequence[float] = IMAGENET_STD_01,
                 ir_mean: Sequence[float] = IMAGENET_MEAN_01,
                 ir_std: Sequence[float] = IMAGENET_STD_01,
                 norm_cfg: OptConfigType = None,
                 with_cp: bool = False,
                 channels_last: bool = True) -> None:
        super().__init__()
        for name, stats, sizes in (('vis_mean', vis_mean, (3, )), ('vis_std', vis_std, (3, )),
                                   ('ir_mean', ir_mean, (1, 3)), ('ir_std', ir_std, (1, 3))):
            if len(stats) not in sizes:
                raise ValueError(f'UNetFuser: {name} must have {" or ".join(map(str, sizes))} '
                                 f'values (one per channel), got {tuple(stats)}')
        for name, stats in zip(NORM_STATS, (vis_mean, vis_std, ir_mean, ir_std)):
            self.register_buffer(name, torch.tensor(stats).reshape(1, -1, 1, 1))
        self.net = LangUNet(base_channels=base_channels, text_dim=text_dim,
                            token_dim=token_dim, num_heads=num_heads,
                            inject_levels=inject_levels, fusion_block=fusion_block,
                            norm_cfg=norm_cfg, with_cp=with_cp, channels_last=channels_last)

    @property
    def requires_text(self) -> bool:
        """Whether :meth:`forward` needs ``text_feats`` and ``text_mask``."""
        return self.net.requires_text

    def forward(self, vis: Tensor, ir: Tensor, text_feats: Optional[Tensor] = None,
                text_mask: Optional[Tensor] = None) -> Tensor:
        """Fuse a batch.

        Args:
            vis (Tensor): Normalised visible RGB ``(B, 3, H, W)``.
            ir (Tensor): Normalised infrared ``(B, C, H, W)``, ``C`` = channels of
                ``ir_mean`` (3 for the published gray-as-RGB IR, or 1).
            text_feats (Tensor, optional): Word features ``(B, T, text_dim)``; required
                when ``requires_text``. Defaults to None.
            text_mask (Tensor, optional): ``(B, T)``, nonzero for words. Defaults to None.

        Returns:
            Tensor: The fused RGB ``(B, 3, H, W)`` normalised with the VIS statistics.
        """
        if vis.dim() != 4 or vis.shape[1] != 3:
            raise ValueError(f'UNetFuser: vis must be (B, 3, H, W), got {tuple(vis.shape)}')
        if ir.dim() != 4 or ir.shape[1] != self.mean_ir.shape[1] or \
                (ir.shape[0], *ir.shape[2:]) != (vis.shape[0], *vis.shape[2:]):
            raise ValueError(f'UNetFuser: ir must be (B, {self.mean_ir.shape[1]}, H, W) like '
                             f'vis {tuple(vis.shape)}, got {tuple(ir.shape)}')
        ycbcr = rgb_to_ycbcr(denormalize(vis, self.mean_vis, self.std_vis))
        ir_y = rgb_to_luma(denormalize(ir, self.mean_ir, self.std_ir))
        fused_y = self.net(ycbcr[:, :1], ir_y, text_feats, text_mask)
        rgb = ycbcr_to_rgb(torch.cat([fused_y, ycbcr[:, 1:]], dim=1)).clamp(0.0, 1.0)
        return normalize(rgb, self.mean_vis, self.std_vis)
