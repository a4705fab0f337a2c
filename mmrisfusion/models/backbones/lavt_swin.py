"""LAVT's language-aware Swin Transformer (the "lavt" variant: text features come from outside).

Swin stages are mmseg's :class:`SwinBlockSequence` (the numbers are those of the official
Swin-Seg code: same padding, cyclic shift, attention mask and relative position bias) and
mmcv's :class:`PatchEmbed`; patch merging is :class:`SwinPatchMerging`, in the official
channel order. Their shifted-window attention runs as :class:`ShiftWindowAttention` (same
parameters and function, fewer copies, ``scaled_dot_product_attention``). After the blocks of
every stage and before patch merging, a :class:`PWAM` and a :class:`LanguageGate` mix the
words into the pixels.
"""
import functools
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmengine.logging import print_log
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import constant_init, trunc_normal_, trunc_normal_init
from mmseg.models.backbones.swin import ShiftWindowMSA, SwinBlockSequence
from torch import Tensor

from mmrisfusion.registry import MODELS
from mmrisfusion.utils.checkpoint import load_weights_only
from mmrisfusion.utils.typing_utils import OptConfigType, OptMultiConfig

from ..layers.lavt_fusion import PWAM, HorizontalContext, LanguageGate, check_word_features
from ..utils.activation_checkpoint import checkpoint_call
from ..utils.ckpt_convert import convert_swin_official

SWIN_22K_URL = ('https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
                'swin_base_patch4_window12_384_22k.pth')


# Added to the attention logits between tokens that the cyclic shift brought from different
# regions into one window (the official constant).
_SHIFT_MASK_VALUE = -100.0


def shift_window_mask(height: int, width: int, window: int, shift: int,
                      device: torch.device) -> Tensor:
    """The shifted windows' additive attention mask, built once per shape and device.

    After the cyclic shift by ``shift``, the windows of the last row and column mix tokens
    of up to three regions of the (padded) map; tokens of different regions must not attend
    to each other. The mask depends only on the shape, so it is cached, except while
    torch.compile or torch.export trace the model: a mask made then is a tracing tensor,
    which a later eager call must not get from the cache.

    Args:
        height (int): Padded map height (a multiple of ``window``).
        width (int): Padded map width (a multiple of ``window``).
        window (int): Window side.
        shift (int): Cyclic shift, ``0 < shift < window``.
        device (torch.device): Where the mask lives.

    Returns:
        Tensor: (num_windows, window**2, window**2) float32: 0 within a region, -100 across.
    """
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return _build_shift_window_mask(height, width, window, shift, device)
    return _cached_shift_window_mask(height, width, window, shift, device)


def _build_shift_window_mask(height: int, width: int, window: int, shift: int,
                             device: torch.device) -> Tensor:
    """:func:`shift_window_mask`, computed."""
    region = torch.zeros(height, width, device=device)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, rows in enumerate(cuts):
        for j, cols in enumerate(cuts):
            region[rows, cols] = 3 * i + j
    windows = region.view(height // window, window, width // window, window).transpose(1, 2)
    windows = windows.reshape(-1, window * window)
    across = windows.unsqueeze(1) != windows.unsqueeze(2)
    return torch.zeros(across.shape, device=device).masked_fill_(across, _SHIFT_MASK_VALUE)


_cached_shift_window_mask = functools.lru_cache(maxsize=16)(_build_shift_window_mask)


class ShiftWindowAttention(nn.Module):
    """mmseg's :class:`ShiftWindowMSA` (its parameters, its function), computed faster.

    The same pipeline as the official Swin code: zero-pad the map to whole windows, shift it
    cyclically (odd blocks), attend within each window with the relative position bias (and
    the shift mask), shift back, crop. Where it differs, the results are the same to float32
    rounding:

    - The query/key/value projection runs on the real tokens only; the padded tokens, zeros
      in the official code, get exactly their projection, the bias. The output projection runs
      after the crop. On 480x480 inputs this skips the padding's share of both projections:
      30% at stage 3 (30x30 tokens padded to 36x36), 61% at stage 4 (15x15 padded to 24x24).
    - Window partition, head split, window reverse and head merge are one copy each way.
    - The relative position bias and the shift mask are one additive mask for
      ``scaled_dot_product_attention`` (its fused kernel without gradients, as in inference;
      the math kernel when the bias is trained); the shift mask is cached per shape
      (:func:`shift_window_mask`).

    Args:
        msa (ShiftWindowMSA): The module to compute; its ``w_msa`` (with the parameters) and
            ``drop`` become this module's, so the parameter names do not change.
    """

    def __init__(self, msa: ShiftWindowMSA) -> None:
        super().__init__()
        self.window_size = msa.window_size
        self.shift_size = msa.shift_size
        self.w_msa = msa.w_msa
        self.drop = msa.drop

    def _qkv(self, x: Tensor, pad_b: int, pad_r: int) -> Tensor:
        """The projection (B, H, W, C) -> (B, H + pad_b, W + pad_r, 3C) of the padded map."""
        qkv = self.w_msa.qkv
        out = qkv(x)
        if not (pad_b or pad_r):
            return out
        batch, height, width, channels = out.shape
        if qkv.bias is None:
            return F.pad(out, (0, 0, 0, pad_r, 0, pad_b))
        padded = qkv.bias.expand(batch, height + pad_b, width + pad_r, channels).clone()
        padded[:, :height, :width] = out
        return padded

    def _attention_mask(self, height: int, width: int) -> Tensor:
        """The relative position bias plus, in shifted blocks, the shift mask.

        Returns:
            Tensor: (1, heads, N, N) without shift (for batches of windows), else
            (1, num_windows * heads, N, N) (for batches of images).
        """
        msa = self.w_msa
        tokens = self.window_size**2
        bias = msa.relative_position_bias_table[msa.relative_position_index.view(-1)]
        bias = bias.view(tokens, tokens, -1).permute(2, 0, 1)  # (heads, N, N)
        if not self.shift_size:
            return bias.unsqueeze(0)
        mask = shift_window_mask(height, width, self.window_size, self.shift_size,
                                 bias.device)
        return (mask.unsqueeze(1) + bias).reshape(1, -1, tokens, tokens)

    def forward(self, query: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
        """Attend within the (shifted) windows.

        Args:
            query (Tensor): Tokens (B, H*W, C).
            hw_shape (tuple[int, int]): ``(H, W)``.

        Returns:
            Tensor: (B, H*W, C).
        """
        batch, length, channels = query.shape
        height, width = hw_shape
        if length != height * width:
            raise ValueError(f'ShiftWindowAttention: {length} tokens do not form a '
                             f'{height}x{width} map')
        msa, window, shift = self.w_msa, self.window_size, self.shift_size
        heads = msa.num_heads
        pad_b, pad_r = -height % window, -width % window
        rows, cols = (height + pad_b) // window, (width + pad_r) // window
        qkv = self._qkv(query.view(batch, height, width, channels), pad_b, pad_r)
        if shift:
            qkv = torch.roll(qkv, shifts=(-shift, -shift), dims=(1, 2))
        # (B, rows, Wh, cols, Ww, 3, heads, d) -> (3, B, rows, cols, heads, Wh, Ww, d)
        qkv = qkv.view(batch, rows, window, cols, window, 3, heads, channels // heads)
        # contiguous().view(), not reshape(): torch.export (ONNX) mis-decomposes the reshape
        # of this permutation when a side has one window
        qkv = qkv.permute(5, 0, 1, 3, 6, 2, 4, 7).contiguous().view(3, -1, heads, window**2,
                                                                    channels // heads)
        mask = self._attention_mask(rows * window, cols * window)
        if shift:  # the mask differs per window: one batch entry per image
            qkv = qkv.view(3, batch, -1, window**2, channels // heads)
        out = F.scaled_dot_product_attention(
            qkv[0], qkv[1], qkv[2], attn_mask=mask.to(qkv.dtype),
            dropout_p=msa.attn_drop.p if self.training else 0.0, scale=msa.scale)
        # (B, rows, cols, heads, Wh, Ww, d) -> (B, rows, Wh, cols, Ww, heads, d)
        out = out.view(batch, rows, cols, heads, window, window, channels // heads)
        out = out.permute(0, 1, 4, 2, 5, 3, 6).contiguous().view(batch, rows * window,
                                                                 cols * window, channels)
        if shift:
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        if pad_b or pad_r:
            out = out[:, :height, :width]
        out = msa.proj_drop(msa.proj(out.reshape(batch, length, channels)))
        return self.drop(out)


class SwinPatchMerging(nn.Module):
    """Swin's patch merging in the official channel order: ``Linear(LN(concat 2x2))``.

    The 2x2 neighbours are concatenated as ``[x00, x10, x01, x11]`` blocks of ``C`` channels
    (row offset first), as in the official Swin and LAVT code, so their weights load
    unchanged. mmcv's ``PatchMerging`` (``nn.Unfold``) computes the same function with the
    channels interleaved and permuted weights; its different summation order changes float32
    rounding, which LAVT's instance norms amplify (see ``check_reference.py``).

    Args:
        in_channels (int): Channels ``C`` of the input tokens.
        out_channels (int): Channels of the merged tokens (``2C`` in Swin).
        norm_cfg (dict, optional): The norm before the reduction; None for none.
            Defaults to ``dict(type='LN')``.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: OptConfigType = dict(type='LN')) -> None:
        super().__init__()
        self.norm = (build_norm_layer(norm_cfg, 4 * in_channels)[1]
                     if norm_cfg is not None else nn.Identity())
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, x: Tensor, hw_shape: Tuple[int, int]) -> Tuple[Tensor, Tuple[int, int]]:
        """Merge every 2x2 neighbourhood; odd sides are zero-padded at the bottom/right.

        Args:
            x (Tensor): Tokens (B, H*W, C).
            hw_shape (tuple[int, int]): ``(H, W)``.

        Returns:
            tuple: Tokens (B, ceil(H/2)*ceil(W/2), out_channels) and their ``(H', W')``.
        """
        height, width = hw_shape
        batch, length, channels = x.shape
        if length != height * width:
            raise ValueError(f'SwinPatchMerging: {length} tokens do not form a '
                             f'{height}x{width} map')
        x = x.view(batch, height, width, channels)
        if height % 2 or width % 2:
            x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]],
                      dim=-1)
        merged_shape = (x.shape[1], x.shape[2])
        x = self.reduction(self.norm(x.view(batch, -1, 4 * channels)))
        return x, merged_shape


@MODELS.register_module()
class LAVTSwinTransformer(BaseModule):
    """Swin Transformer with LAVT's pixel-word attention at the end of every stage.

    Per stage ``i``: ``X <- SwinBlocks_i(X)``; ``F = PWAM_i(X, words)``;
    ``X <- X + LanguageGate_i(F) * F``; the stage's output is ``LayerNorm_i(F)`` reshaped to
    (B, C_i, H_i, W_i); then ``X <- PatchMerging_i(X)`` feeds the next stage.

    Call graph: ``forward(x, text_feats, text_mask)`` -> ``patch_embed`` -> for every stage
    ``stages[i]`` -> ``pwams[i]`` -> ``norm{i}`` (output) -> ``lang_gates[i]`` ->
    ``downsamples[i]`` (the last two not after the last stage, whose gate is kept only for
    checkpoint compatibility: frozen and never computed, see below).

    The last stage's gate would update a stream that no later stage reads (LAVT's outputs are
    ``LayerNorm_i(F)``, not ``X``). The published code still has it and computes it, and its
    parameters never get a gradient. We keep its weights, so the published checkpoints load
    and save with the same keys, but freeze them (``requires_grad=False``) and skip the
    computation: the numbers are the published ones, and every trainable parameter gets a
    gradient, so DDP runs without ``find_unused_parameters`` (and its graph walk per step).

    The defaults are RIS-FUSION's Swin-B (window 12, for the
    ``swin_base_patch4_window12_384_22k`` weights); use ``window_size=7`` with the ImageNet-1k
    weights.

    Args:
        in_channels (int): Image channels. Defaults to 3.
        embed_dims (int): Channels of the first stage; stage ``i`` has ``embed_dims * 2**i``.
            Defaults to 128.
        patch_size (int): Side of the non-overlapping patches. Defaults to 4.
        window_size (int): Side of the attention windows. Defaults to 12.
        mlp_ratio (float): Hidden width of the MLPs relative to the stage width.
            Defaults to 4.0.
        depths (Sequence[int]): Swin blocks per stage. Defaults to (2, 2, 18, 2).
        num_heads (Sequence[int]): Self-attention heads per stage. Defaults to (4, 8, 16, 32).
        fusion_heads (Sequence[int]): PWAM heads per stage. Defaults to (1, 1, 1, 1).
        text_dims (int): Channels of the word features. Defaults to 768.
        qkv_bias (bool): Whether the qkv projections have a bias. Defaults to True.
        qk_scale (float, optional): Override of the ``head_dims**-0.5`` attention scale.
            Defaults to None.
        drop_rate (float): Dropout after the patch embedding and in the blocks.
            Defaults to 0.0.
        attn_drop_rate (float): Dropout on the attention weights. Defaults to 0.0.
        drop_path_rate (float): Stochastic depth, rising linearly over all blocks up to this
            value. Defaults to 0.3.
        fusion_drop (float): Dropout inside the PWAMs. Defaults to 0.0.
        fusion_coords (bool): Give every PWAM the pixels' normalised x/y as two more visual
            channels (``PWAM(with_coords=True)``), for expressions about absolute position
            ("the leftmost car"). Not in LAVT. Defaults to False.
        horizontal_context (bool): Add to every PWAM's output what lies to the left and to
            the right of each pixel (:class:`~mmrisfusion.models.layers.HorizontalContext`,
            a directional pooling), for expressions that compare objects of one kind by
            position. Not in LAVT. Defaults to False.
        context_text_gate (bool): With ``horizontal_context``, let the expression (the mean
            of its word features) scale the left and right summaries, to pick the side it is
            about. Not in LAVT. Defaults to False.
        detail_channels (int): When positive, also return first a map of the input image at
            half its resolution with this many channels (a 3x3 convolution of stride 2,
            BatchNorm and ReLU), for a decoder that refines the mask finer than the first
            stage's 1/4: at 1/4 even a perfect prediction of the 128 px demo's small
            objects, resized back, scores only 79 mIoU (93 at 1/2). The low-level features
            of DeepLabv3+'s decoder; not in LAVT. Defaults to 0 (none, as published).
        patch_norm (bool): Whether patch embedding and merging have a LayerNorm.
            Defaults to True.
        out_indices (Sequence[int]): Stages whose ``LayerNorm_i(F)`` is returned (after the
            detail map, if any). Defaults to (0, 1, 2, 3).
        act_cfg (dict, optional): Activation of the MLPs. Defaults to None (GELU).
        norm_cfg (dict, optional): Normalisation of the blocks and outputs.
            Defaults to None (LayerNorm).
        with_cp (bool): Whether the Swin blocks and the PWAMs use activation checkpointing
            (:func:`~mmrisfusion.models.utils.checkpoint_call`, non-reentrant: saves memory
            at 480 px, costs a second forward of each block in the backward; works under
            DDP). Defaults to False.
        pretrained (str, optional): Path of an official Swin checkpoint (e.g.
            ``swin_base_patch4_window12_384_22k.pth``); shorthand for
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``. Defaults to None.
        init_cfg (dict | list, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int = 3,
                 embed_dims: int = 128,
                 patch_size: int = 4,
                 window_size: int = 12,
                 mlp_ratio: float = 4.0,
                 depths: Sequence[int] = (2, 2, 18, 2),
                 num_heads: Sequence[int] = (4, 8, 16, 32),
                 fusion_heads: Sequence[int] = (1, 1, 1, 1),
                 text_dims: int = 768,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.3,
                 fusion_drop: float = 0.0,
                 fusion_coords: bool = False,
                 horizontal_context: bool = False,
                 context_text_gate: bool = False,
                 detail_channels: int = 0,
                 patch_norm: bool = True,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 act_cfg: OptConfigType = None,
                 norm_cfg: OptConfigType = None,
                 with_cp: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('LAVTSwinTransformer: give either pretrained or init_cfg, '
                                 'not both')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        num_stages = len(depths)
        for name, values in (('num_heads', num_heads), ('fusion_heads', fusion_heads)):
            if len(values) != num_stages:
                raise ValueError(f'LAVTSwinTransformer: {name} has {len(values)} entries but '
                                 f'depths has {num_stages} stages')
        if any(i < 0 or i >= num_stages for i in out_indices):
            raise ValueError(f'LAVTSwinTransformer: out_indices {tuple(out_indices)} must lie '
                             f'in [0, {num_stages})')
        act_cfg = act_cfg or dict(type='GELU')
        norm_cfg = norm_cfg or dict(type='LN')
        self.embed_dims = embed_dims
        self.window_size = window_size
        self.with_cp = with_cp
        self.depths = tuple(depths)
        self.out_indices = tuple(out_indices)
        self.num_features = [embed_dims * 2**i for i in range(num_stages)]

        self.patch_embed = PatchEmbed(
            in_channels=in_channels,
            embed_dims=embed_dims,
            conv_type='Conv2d',
            kernel_size=patch_size,
            stride=patch_size,
            padding='corner',
            norm_cfg=norm_cfg if patch_norm else None)
        self.drop_after_pos = nn.Dropout(p=drop_rate)

        # On the CPU explicitly: the model may be built under a 'meta' device context.
        drop_path_rates = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.stages = ModuleList()
        self.pwams = ModuleList()
        self.lang_gates = ModuleList()
        self.downsamples = ModuleList()
        for i, dims in enumerate(self.num_features):
            self.stages.append(
                SwinBlockSequence(
                    embed_dims=dims,
                    num_heads=num_heads[i],
                    feedforward_channels=int(mlp_ratio * dims),
                    depth=depths[i],
                    window_size=window_size,
                    qkv_bias=qkv_bias,
                    qk_scale=qk_scale,
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    drop_path_rate=drop_path_rates[sum(depths[:i]):sum(depths[:i + 1])],
                    downsample=None,
                    act_cfg=act_cfg,
                    norm_cfg=norm_cfg,
                    # mmseg's checkpointing is the reentrant variant, which breaks DDP:
                    # forward() checkpoints the blocks itself.
                    with_cp=False))
            for block in self.stages[-1].blocks:
                block.attn = ShiftWindowAttention(block.attn)
            self.pwams.append(
                PWAM(dims, text_dims=text_dims, num_heads=fusion_heads[i],
                     dropout=fusion_drop, with_coords=fusion_coords))
            self.lang_gates.append(LanguageGate(dims))
            if i < num_stages - 1:
                self.downsamples.append(
                    SwinPatchMerging(dims, 2 * dims,
                                     norm_cfg=norm_cfg if patch_norm else None))
        if context_text_gate and not horizontal_context:
            raise ValueError('LAVTSwinTransformer: context_text_gate=True gates the '
                             'horizontal context; it needs horizontal_context=True')
        self.context_text_gate = context_text_gate
        self.horizontal_contexts = ModuleList(
            HorizontalContext(dims, text_dims=text_dims if context_text_gate else 0)
            for dims in self.num_features) if horizontal_context else None
        self.detail_stem = ConvModule(
            in_channels, detail_channels, 3, stride=2, padding=1, bias=False,
            norm_cfg=dict(type='BN')) if detail_channels > 0 else None
        for i in self.out_indices:
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, self.num_features[i])[1])
        # The last stage's gate: loadable, frozen, never computed (see the class docstring).
        self.lang_gates[-1].requires_grad_(False)

    def init_weights(self) -> None:
        """Initialise as the official code does, then load the Swin weights if given.

        Linear layers get truncated-normal(0.02) weights and zero biases, LayerNorms ones and
        zeros, relative position tables truncated-normal(0.02). With a ``Pretrained``
        ``init_cfg``, the official Swin checkpoint is converted to our names
        (:func:`convert_swin_official`, which resizes the relative position tables when the
        window differs) and loaded over that; PWAMs, gates and output norms keep their
        initialisation, as in LAVT.

        Raises:
            FileNotFoundError: When the checkpoint file does not exist.
            KeyError: When a Swin weight of ours is missing from the checkpoint, or the
                checkpoint has weights we do not know.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_init(module, std=0.02, bias=0.0)
            elif isinstance(module, nn.LayerNorm):
                constant_init(module, val=1.0, bias=0.0)
        for name, param in self.named_parameters():
            if name.endswith('relative_position_bias_table'):
                trunc_normal_(param, std=0.02)
        if self.init_cfg is None:
            return
        if (not isinstance(self.init_cfg, dict) or self.init_cfg.get('type') != 'Pretrained'
                or 'checkpoint' not in self.init_cfg):
            raise ValueError('LAVTSwinTransformer only supports '
                             "init_cfg=dict(type='Pretrained', checkpoint=PATH), got "
                             f'{self.init_cfg}')
        self.load_swin_checkpoint(self.init_cfg['checkpoint'])

    def load_swin_checkpoint(self, path: str) -> None:
        """Load an official Swin checkpoint (ImageNet weights) into the Swin part.

        Args:
            path (str): Local path of the official file, e.g.
                ``swin_base_patch4_window12_384_22k.pth``.

        Raises:
            FileNotFoundError: When ``path`` does not exist.
            KeyError: When the file does not cover our Swin weights or has unknown ones.
        """
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'Swin checkpoint {path} not found. RIS-FUSION initialises from the official '
                f'swin_base_patch4_window12_384_22k.pth ({SWIN_22K_URL}); download it on a '
                'machine with internet access and give its local path.')
        checkpoint = load_weights_only(path)
        state_dict = checkpoint.get('model', checkpoint.get('state_dict', checkpoint))
        state_dict = convert_swin_official(state_dict, window_size=self.window_size)
        missing, unexpected = self.load_state_dict(state_dict, strict=False)
        language_parts = ('pwams.', 'lang_gates.', 'norm', 'horizontal_contexts.',
                          'detail_stem.')
        missing_swin = [k for k in missing if not k.startswith(language_parts)]
        if missing_swin or unexpected:
            raise KeyError(f'{path} does not match LAVTSwinTransformer(embed_dims='
                           f'{self.embed_dims}, depths={self.depths}): missing Swin weights '
                           f'{missing_swin[:5]}, unexpected weights {unexpected[:5]}')
        print_log(f'LAVTSwinTransformer: loaded Swin weights from {path}; the language '
                  'modules and output norms keep their initialisation', logger='current')

    def forward(self, x: Tensor, text_feats: Tensor,
                text_mask: Tensor) -> Tuple[Tensor, ...]:
        """Extract language-aware multi-scale features.

        Args:
            x (Tensor): Images (B, C, H, W), normalised.
            text_feats (Tensor): Word features (B, T, D).
            text_mask (Tensor): 1 for words, 0 for padding (B, T).

        Returns:
            tuple[Tensor]: The detail map (B, detail_channels, H/2, W/2) when
            ``detail_channels``, then ``LayerNorm_i(F_i)`` of the stages in ``out_indices``,
            each (B, C_i, H_i, W_i).
        """
        check_word_features('LAVTSwinTransformer', text_feats, text_mask)
        text = text_feats.transpose(1, 2)
        sentence = None
        if self.context_text_gate:
            weights = text_mask.to(text_feats.dtype)[..., None]
            sentence = (text_feats * weights).sum(1) / weights.sum(1).clamp(min=1)
        outs: List[Tensor] = [] if self.detail_stem is None else [self.detail_stem(x)]
        x, hw_shape = self.patch_embed(x)
        x = self.drop_after_pos(x)
        for i, stage in enumerate(self.stages):
            for block in stage.blocks:
                x = checkpoint_call(block, x, hw_shape, enabled=self.with_cp)
            feat = checkpoint_call(self.pwams[i], x, text, text_mask, hw_shape,
                                   enabled=self.with_cp)
            if self.horizontal_contexts is not None:
                feat = self.horizontal_contexts[i](feat, hw_shape, sentence)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(feat)
                outs.append(
                    out.view(-1, *hw_shape, self.num_features[i]).permute(0, 3, 1,
                                                                          2).contiguous())
            if i < len(self.downsamples):
                x = x + self.lang_gates[i](feat) * feat
                x, hw_shape = self.downsamples[i](x, hw_shape)
        return tuple(outs)
