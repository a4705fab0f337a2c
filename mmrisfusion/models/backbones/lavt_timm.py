"""Any timm feature extractor made language-aware the way LAVT makes Swin language-aware."""
import functools
import os.path as osp
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import constant_init, trunc_normal_init
from torch import Tensor

from mmrisfusion.registry import MODELS
from mmrisfusion.utils.typing_utils import OptConfigType, OptMultiConfig

from ..layers.lavt_fusion import PWAM, LanguageGate, check_word_features

#: Layouts of the feature modules' outputs: maps (B, C, H, W) or (B, H, W, C), or tokens
#: (B, prefix + H*W, C) of a plain transformer (timm's ``FeatureGetterNet`` models, e.g. ViT).
FEATURE_FORMATS = ('NCHW', 'NHWC', 'NLC')


def _import_timm() -> Any:
    try:
        import timm
    except ImportError as error:
        raise ImportError('LAVTTimmBackbone needs timm: pip install timm') from error
    return timm


@MODELS.register_module()
class LAVTTimmBackbone(BaseModule):
    """A timm ``features_only`` model with LAVT's PWAM and language gate after every stage.

    timm builds the visual network (``timm.create_model(model_name, features_only=True)``,
    any family: ConvNeXt, EfficientNet, ResNet, Swin, ViT, ...). At the output ``X_i`` of each
    feature stage ``i`` (the modules timm's ``feature_info`` names), as
    :class:`LAVTSwinTransformer` does after each Swin stage:

    - ``F_i = PWAM_i(X_i, words)`` (the same :class:`PWAM`, over the stage's pixels);
    - the stage's output to the decoder is ``LayerNorm_i(F_i)`` as (B, C_i, H_i, W_i);
    - ``X_i <- X_i + LanguageGate_i(F_i) * F_i`` is what the next stage reads. The last stage
      has no gate: nothing reads its ``X`` (LAVT keeps a dead one for its checkpoints only).

    The stages are timm's modules, reached through forward hooks, so the network runs as timm
    wrote it. The stage outputs may be maps (``NCHW``, ``NHWC``, as the model's
    ``output_fmt`` says) or, for plain transformers read through ``forward_intermediates``,
    tokens (``NLC``): their prefix tokens (class, registers) pass the gate unchanged and their
    patch tokens form the ``image / reduction`` grid.

    Weights: random unless ``pretrained_cfg_overlay=dict(file=PATH)`` names a local timm
    checkpoint (``.pth`` / ``.safetensors``, read weights-only by timm, after timm's own key
    filtering for the model). Nothing is ever downloaded: model names that point at a hub
    (``hf-hub:``) and overlays with a ``url`` or ``hf_hub_id`` and no ``file`` are refused.

    Not supported: timm's activation checkpointing of the stages (a recomputed stage would
    miss its gate). mmengine's ``sync_bn`` replaces timm's ``BatchNormAct2d`` (EfficientNet,
    RegNet, ...) by a plain ``SyncBatchNorm`` and loses its activation: the first training
    step then stops with an error naming the layer. Families with plain BatchNorm or
    LayerNorm (ResNet, ConvNeXt, Swin, ViT) convert correctly.

    Call graph: ``forward(x, text_feats, text_mask)`` -> ``body(x)`` (timm) -> at each
    feature module's output ``_stage_hook(i)`` -> ``pwams[i]`` -> ``norms[i]`` (output) ->
    ``lang_gates[i]`` (the next stage's input).

    Args:
        model_name (str): A timm model name, e.g. 'convnext_tiny', 'efficientnet_b3',
            'swin_tiny_patch4_window7_224' (``timm.list_models()``).
        text_dims (int): Channels of the word features. Defaults to 768.
        out_indices (Sequence[int], optional): timm feature indices to make language-aware
            and return. Defaults to None (timm's default for the model: every level).
        fusion_heads (int | Sequence[int]): PWAM heads, one value or one per stage.
            Defaults to 1.
        fusion_drop (float): Dropout inside the PWAMs. Defaults to 0.0.
        pretrained_cfg_overlay (dict, optional): timm's override of the model's pretrained
            config; ``file`` (a local path) loads those weights. Defaults to None (random
            weights).
        norm_cfg (dict, optional): Normalisation of the stage outputs. Defaults to None
            (LayerNorm over channels, as LAVT).
        init_cfg (dict | list, optional): Initialisation config. Defaults to None.
        **timm_kwargs: More arguments of ``timm.create_model`` (``drop_path_rate``,
            ``img_size``, architecture sizes, ...).
    """

    def __init__(self,
                 model_name: str,
                 text_dims: int = 768,
                 out_indices: Optional[Sequence[int]] = None,
                 fusion_heads: Union[int, Sequence[int]] = 1,
                 fusion_drop: float = 0.0,
                 pretrained_cfg_overlay: Optional[dict] = None,
                 norm_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None,
                 **timm_kwargs: Any) -> None:
        super().__init__(init_cfg=init_cfg)
        timm = _import_timm()
        overlay = dict(pretrained_cfg_overlay or {})
        checkpoint = overlay.get('file')
        if model_name.startswith(('hf-hub:', 'hf_hub:')) or (
                checkpoint is None and ({'url', 'hf_hub_id'} & set(overlay))):
            raise ValueError(f'LAVTTimmBackbone({model_name!r}, {overlay}): weights come from '
                             'a local file only; give pretrained_cfg_overlay=dict(file=PATH)')
        if checkpoint is not None and not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'timm weights {checkpoint} not found (pretrained_cfg_overlay.file of '
                f'{model_name!r}). Nothing is downloaded: fetch them on a machine with internet '
                f"access, e.g. timm's model.safetensors of {model_name}, and give the local path.")
        if out_indices is not None:
            timm_kwargs['out_indices'] = tuple(out_indices)
        self.model_name = model_name
        self.body = timm.create_model(
            model_name, pretrained=checkpoint is not None, features_only=True,
            pretrained_cfg_overlay=overlay if checkpoint is not None else None, **timm_kwargs)
        info = self.body.feature_info
        self.num_features = list(info.channels())
        self.reductions = list(info.reduction())
        num_stages = len(self.num_features)
        heads = [fusion_heads] * num_stages if isinstance(fusion_heads, int) else list(
            fusion_heads)
        if len(heads) != num_stages:
            raise ValueError(f'LAVTTimmBackbone: fusion_heads has {len(heads)} entries for '
                             f'{num_stages} feature stages of {model_name}')
        norm_cfg = norm_cfg or dict(type='LN')
        self.pwams = ModuleList(
            PWAM(dims, text_dims=text_dims, num_heads=h, dropout=fusion_drop)
            for dims, h in zip(self.num_features, heads))
        self.norms = ModuleList(build_norm_layer(norm_cfg, dims)[1] for dims in self.num_features)
        self.lang_gates = ModuleList(LanguageGate(dims) for dims in self.num_features[:-1])

        getter = getattr(_timm_features(), 'FeatureGetterNet', None)
        if getter is not None and isinstance(self.body, getter):
            self.feature_format = 'NLC'
            self.num_prefix_tokens = int(getattr(self.body.model, 'num_prefix_tokens', 0))
        else:
            fmt = getattr(self.body, 'output_fmt', 'NCHW')
            self.feature_format = getattr(fmt, 'value', str(fmt))
            self.num_prefix_tokens = 0
        if self.feature_format not in FEATURE_FORMATS:
            raise ValueError(f'LAVTTimmBackbone: {model_name} gives features as '
                             f'{self.feature_format}; supported: {FEATURE_FORMATS}')
        modules = dict(self.body.named_modules())
        for index, name in enumerate(info.module_name()):
            candidates = (name, name.replace('.', '_', 1), f'model.{name}')
            found = [modules[c] for c in candidates if c in modules]
            if not found:
                raise KeyError(f'LAVTTimmBackbone: the feature module {name!r} of '
                               f'{model_name} is not in its features_only model')
            found[0].register_forward_hook(functools.partial(self._stage_hook, index))
        self._context: Optional[Tuple[Tensor, Tensor, List[Tensor], Tuple[int, int]]] = None
        self._fused_norms = [name for name, module in self.body.named_modules()
                             if _is_bn_act(module)]
        self._norms_checked = False

    def init_weights(self) -> None:
        """Initialise the language modules as LAVT does; timm's network keeps its own
        initialisation or the loaded weights (then ``init_cfg``, if any, applies)."""
        for module in [*self.lang_gates.modules(), *self.norms.modules()]:
            if isinstance(module, nn.Linear):
                trunc_normal_init(module, std=0.02, bias=0.0)
            elif isinstance(module, nn.LayerNorm):
                constant_init(module, val=1.0, bias=0.0)
        super().init_weights()

    def _stage_hook(self, index: int, module: nn.Module, inputs: Any, output: Any) -> Any:
        """At a feature stage's output: PWAM, the stage's output, the gated next input."""
        if self._context is None:  # the timm network run on its own: leave it alone
            return None
        if not isinstance(output, Tensor):
            raise TypeError(f'LAVTTimmBackbone: feature stage {index} of {self.model_name} '
                            f'returns {type(output).__name__}, not a tensor')
        text, text_mask, outs, image_size = self._context
        tokens, grid, rebuild = self._as_tokens(output, index, image_size)
        feat = self.pwams[index](tokens, text, text_mask)
        out = self.norms[index](feat)
        outs.append(out.view(out.shape[0], *grid, out.shape[-1]).permute(0, 3, 1,
                                                                          2).contiguous())
        if index == len(self.lang_gates):
            return None  # the last stage: nothing reads X
        return rebuild(tokens + self.lang_gates[index](feat) * feat)

    def _as_tokens(self, output: Tensor, index: int, image_size: Tuple[int, int]
                   ) -> Tuple[Tensor, Tuple[int, int], Callable[[Tensor], Tensor]]:
        """A stage output as pixel tokens (B, HW, C), its grid and the way back."""
        channels = self.num_features[index]
        channel_dim = {'NCHW': 1, 'NHWC': -1, 'NLC': -1}[self.feature_format]
        if output.shape[channel_dim] != channels or output.dim() != (
                3 if self.feature_format == 'NLC' else 4):
            raise ValueError(f'LAVTTimmBackbone: feature stage {index} of {self.model_name} '
                             f'gave {tuple(output.shape)}, expected {self.feature_format} '
                             f'with {channels} channels')
        if self.feature_format == 'NCHW':
            batch, _, height, width = output.shape
            return (output.flatten(2).transpose(1, 2), (height, width),
                    lambda x: x.transpose(1, 2).reshape(batch, channels, height, width))
        if self.feature_format == 'NHWC':
            batch, height, width, _ = output.shape
            return (output.flatten(1, 2), (height, width),
                    lambda x: x.view(batch, height, width, channels))
        reduction = self.reductions[index]
        grid = (image_size[0] // reduction, image_size[1] // reduction)
        prefix = output[:, :self.num_prefix_tokens]
        if output.shape[1] - self.num_prefix_tokens != grid[0] * grid[1]:
            raise ValueError(f'LAVTTimmBackbone: feature stage {index} of {self.model_name} '
                             f'has {output.shape[1] - self.num_prefix_tokens} patch tokens, '
                             f'not the {grid[0]}x{grid[1]} grid of a {tuple(image_size)} '
                             f'input at 1/{reduction}')
        return (output[:, self.num_prefix_tokens:], grid,
                lambda x: torch.cat([prefix, x], dim=1))

    def _check_norms(self) -> None:
        """Once: timm's fused BatchNorm+activation layers must still be there (see class
        docstring on ``sync_bn``)."""
        for name in self._fused_norms:
            if not _is_bn_act(self.body.get_submodule(name)):
                raise RuntimeError(
                    f'LAVTTimmBackbone: {name} of {self.model_name} was timm\'s '
                    f'BatchNormAct2d and is now {type(self.body.get_submodule(name)).__name__}'
                    ', without its activation (mmengine\'s sync_bn converts by type). Train '
                    'this family without sync_bn, or pick one with plain BatchNorm/LayerNorm')
        self._norms_checked = True

    def forward(self, x: Tensor, text_feats: Tensor,
                text_mask: Tensor) -> Tuple[Tensor, ...]:
        """Extract language-aware multi-scale features.

        Args:
            x (Tensor): Images (B, C, H, W), normalised.
            text_feats (Tensor): Word features (B, T, D).
            text_mask (Tensor): 1 for words, 0 for padding (B, T).

        Returns:
            tuple[Tensor]: ``LayerNorm_i(F_i)`` of every feature stage, each
            (B, C_i, H_i, W_i).
        """
        check_word_features('LAVTTimmBackbone', text_feats, text_mask)
        if self.training and not self._norms_checked:
            self._check_norms()
        outs: List[Tensor] = []
        self._context = (text_feats.transpose(1, 2), text_mask, outs, tuple(x.shape[-2:]))
        try:
            self.body(x)
        finally:
            self._context = None
        if len(outs) != len(self.num_features):
            raise RuntimeError(f'LAVTTimmBackbone: {len(outs)} of the '
                               f'{len(self.num_features)} feature stages of {self.model_name} '
                               'ran (is activation checkpointing on?)')
        return tuple(outs)


def _timm_features() -> Any:
    """timm's feature-extraction module (its wrappers' classes)."""
    _import_timm()
    from timm.models import _features
    return _features


def _is_bn_act(module: nn.Module) -> bool:
    """Whether ``module`` is one of timm's fused BatchNorm + activation layers."""
    from timm import layers
    fused = tuple(getattr(layers, name) for name in ('BatchNormAct2d', 'SyncBatchNormAct')
                  if hasattr(layers, name))
    return isinstance(module, fused)
