"""Frozen CLIP image and text encoders read from local files, for language-driven losses.

Two sources are supported, both offline:

- :class:`OpenCLIPEncoder`: an OpenAI CLIP checkpoint through ``open_clip`` (the released
  ``ViT-B-32.pt`` TorchScript file, or a plain state dict in OpenAI/open_clip key names such as
  open_clip's ``open_clip_pytorch_model.bin``); the architecture is read from the tensor
  shapes.
- :class:`HFCLIPEncoder`: a Hugging Face CLIP folder (``config.json``, weights, tokenizer
  files), e.g. a local copy of ``openai/clip-vit-base-patch32``, through ``CLIPModel``.

Both give L2-normalised embeddings of gray or RGB images in [0, 1] and of prompts, and keep the
CLIP weights frozen and out of the model's checkpoints (:class:`FrozenNet`).
"""
import os.path as osp
import zipfile
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrisfusion.registry import MODELS
from mmrisfusion.utils.checkpoint import load_torchscript_weights, load_weights_only

from ..utils.frozen import FrozenNet

# Image statistics CLIP was trained with (0..1 scale).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

OPENAI_HINT = ('the OpenAI ViT-B/32 file is ViT-B-32.pt, downloadable from the openaipublic URL '
               'that open_clip lists in open_clip/pretrained.py for model "ViT-B-32", tag '
               '"openai"; fetch it on a machine with network access and give its local path')
HF_HINT = ('a Hugging Face CLIP folder is a local copy of e.g. openai/clip-vit-base-patch32 '
           '(config.json, model.safetensors or pytorch_model.bin, and the tokenizer files '
           'vocab.json + merges.txt or tokenizer.json)')


class FrozenCLIPEncoder(FrozenNet):
    """Common part of the CLIP wrappers: image preparation and normalised embeddings.

    Images are prepared as the published LDFusion loss does: a gray image is replicated to
    three channels, the image is resized bilinearly to CLIP's input size without cropping
    (``F.interpolate``, ``align_corners=False``, no antialiasing) and normalised with CLIP's
    mean and standard deviation.

    Args:
        image_size (int): CLIP's input side. Defaults to 224.
    """

    def __init__(self, image_size: int = 224) -> None:
        super().__init__()
        self.image_size = image_size
        self.register_buffer('mean', torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def prepare_images(self, images: Tensor) -> Tensor:
        """Turn images in [0, 1] into CLIP's input.

        Args:
            images (Tensor): ``(B, 1, H, W)`` gray or ``(B, 3, H, W)`` RGB images in [0, 1].

        Returns:
            Tensor: ``(B, 3, S, S)`` normalised images, ``S = image_size``.
        """
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError('CLIP images must be (B, 1, H, W) or (B, 3, H, W) in [0, 1], '
                             f'got shape {tuple(images.shape)}')
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size),
                                   mode='bilinear', align_corners=False)
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def encode_image(self, images: Tensor) -> Tensor:
        """L2-normalised image embeddings; differentiable with respect to ``images``.

        Args:
            images (Tensor): ``(B, 1, H, W)`` or ``(B, 3, H, W)`` images in [0, 1].

        Returns:
            Tensor: ``(B, D)`` unit-norm embeddings.
        """
        return F.normalize(self._image_features(self.prepare_images(images)), dim=-1)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """L2-normalised text embeddings of the prompts (no gradient: CLIP is frozen).

        Args:
            texts (Sequence[str]): The prompts.

        Returns:
            Tensor: ``(N, D)`` unit-norm embeddings on the encoder's device.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f'texts must be a sequence of str, got {texts!r}')
        return F.normalize(self._text_features(list(texts)), dim=-1)

    def _image_features(self, pixels: Tensor) -> Tensor:
        raise NotImplementedError

    def _text_features(self, texts: list) -> Tensor:
        raise NotImplementedError


def _is_torchscript_archive(path: str) -> bool:
    """Whether ``path`` is a TorchScript zip (it holds a ``constants.pkl``), like OpenAI's."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith('/constants.pkl') or name == 'constants.pkl'
                   for name in archive.namelist())


def load_openai_clip_state_dict(path: str) -> dict:
    """Read the tensors of an OpenAI-layout CLIP checkpoint.

    A plain state dict (``.pt``/``.pth``/``.bin``, optionally under a ``state_dict`` key and
    with a ``module.`` prefix) is read with weights-only loading; ``.safetensors`` with
    safetensors. OpenAI's released file is a TorchScript archive, which ``torch.load`` refuses
    to open with ``weights_only=True`` and ``torch.jit.load`` would compile and run; its
    tensors are read without running anything (:func:`load_torchscript_weights`).

    Args:
        path (str): The checkpoint file.

    Returns:
        dict: Tensor name to tensor, in OpenAI's names.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'CLIP checkpoint {path!r} does not exist: {OPENAI_HINT}.')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        state = load_file(path)
    elif _is_torchscript_archive(path):
        state = load_torchscript_weights(path)
    else:
        state = load_weights_only(path)
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    if not isinstance(state, dict) or 'visual.conv1.weight' not in {
            k.removeprefix('module.') for k in state}:
        raise ValueError(f'{path!r} is not an OpenAI-layout CLIP ViT checkpoint: expected a '
                         "state dict with keys such as 'visual.conv1.weight', "
                         "'token_embedding.weight', 'text_projection'")
    return {k.removeprefix('module.'): v for k, v in state.items()}


@MODELS.register_module()
class OpenCLIPEncoder(FrozenCLIPEncoder):
    """Frozen OpenAI CLIP (ViT image tower and text tower) through ``open_clip``.

    The architecture is inferred from the checkpoint's tensor shapes by open_clip's
    ``build_model_from_openai_state_dict`` (QuickGELU, as OpenAI trained it), so the same class
    reads ViT-B/32 (LDFusion's choice) and other OpenAI ViT sizes, and the tiny random models of
    the tests. Prompts are tokenised with open_clip's bundled BPE vocabulary (offline).

    Args:
        checkpoint (str, optional): Path to the OpenAI CLIP file. Required: CLIP cannot be
            downloaded here. Defaults to None.
    """

    def __init__(self, checkpoint: Optional[str] = None) -> None:
        if checkpoint is None:
            raise ValueError(f'OpenCLIPEncoder needs checkpoint=<path to ViT-B-32.pt>: '
                             f'{OPENAI_HINT}.')
        state = load_openai_clip_state_dict(checkpoint)
        try:
            import open_clip
            from open_clip.model import build_model_from_openai_state_dict
        except ImportError as err:
            raise ImportError('OpenCLIPEncoder needs open_clip: pip install '
                              'open_clip_torch') from err
        model = build_model_from_openai_state_dict(state, quick_gelu=True,
                                                   cast_dtype=None).float()
        image_size = model.visual.image_size
        super().__init__(image_size[0] if isinstance(image_size, (tuple, list)) else image_size)
        self.checkpoint = checkpoint
        self.context_length = model.context_length
        self._tokenize = open_clip.tokenize
        self._hold(model)

    def _image_features(self, pixels: Tensor) -> Tensor:
        return self.net.encode_image(pixels)

    def _text_features(self, texts: list) -> Tensor:
        tokens = self._tokenize(texts, context_length=self.context_length)
        return self.net.encode_text(tokens.to(self.mean.device))


@MODELS.register_module()
class HFCLIPEncoder(FrozenCLIPEncoder):
    """Frozen CLIP from a local Hugging Face folder, through transformers' ``CLIPModel``.

    Args:
        pretrained (str, optional): The local CLIP folder. Required: nothing is fetched from
            the hub. Defaults to None.
    """

    def __init__(self, pretrained: Optional[str] = None) -> None:
        if pretrained is None:
            raise ValueError(f'HFCLIPEncoder needs pretrained=<local CLIP folder>: {HF_HINT}.')
        if not osp.isdir(pretrained):
            raise FileNotFoundError(f'CLIP folder {pretrained!r} does not exist: {HF_HINT}.')
        if not osp.isfile(osp.join(pretrained, 'config.json')):
            raise FileNotFoundError(f'{osp.join(pretrained, "config.json")} is missing: '
                                    f'{HF_HINT}.')
        weights = ('model.safetensors', 'pytorch_model.bin', 'model.safetensors.index.json',
                   'pytorch_model.bin.index.json')
        if not any(osp.isfile(osp.join(pretrained, name)) for name in weights):
            raise FileNotFoundError(f'{pretrained!r} holds no CLIP weights (expected one of '
                                    f'{", ".join(weights)}): {HF_HINT}.')
        try:
            from transformers import AutoTokenizer, CLIPModel
        except ImportError as err:
            raise ImportError('HFCLIPEncoder needs transformers: pip install '
                              'transformers') from err
        model = CLIPModel.from_pretrained(pretrained, local_files_only=True)
        try:
            tokenizer = AutoTokenizer.from_pretrained(pretrained, local_files_only=True)
        except (OSError, ValueError) as err:
            raise FileNotFoundError(f'{pretrained!r} has no usable tokenizer files: '
                                    f'{HF_HINT}.') from err
        super().__init__(model.config.vision_config.image_size)
        self.pretrained = pretrained
        self.max_length = model.config.text_config.max_position_embeddings
        self.tokenizer = tokenizer
        self._hold(model)

    @staticmethod
    def _pooled(output: object) -> Tensor:
        """The projected embedding: transformers 5 wraps it in ``pooler_output``."""
        return output if isinstance(output, Tensor) else output.pooler_output

    def _image_features(self, pixels: Tensor) -> Tensor:
        return self._pooled(self.net.get_image_features(pixel_values=pixels))

    def _text_features(self, texts: list) -> Tensor:
        tokens = self.tokenizer(texts, padding=True, truncation=True,
                                max_length=self.max_length, return_tensors='pt')
        device = self.mean.device
        return self._pooled(self.net.get_text_features(
            input_ids=tokens['input_ids'].to(device),
            attention_mask=tokens['attention_mask'].to(device)))


def build_clip_encoder(clip: Union[dict, FrozenCLIPEncoder]) -> FrozenCLIPEncoder:
    """Build a CLIP encoder from a config dict, or pass an encoder instance through.

    Args:
        clip (dict | FrozenCLIPEncoder): ``dict(type='OpenCLIPEncoder', checkpoint=...)``,
            ``dict(type='HFCLIPEncoder', pretrained=...)`` or an encoder.

    Returns:
        FrozenCLIPEncoder: The encoder.
    """
    if isinstance(clip, FrozenCLIPEncoder):
        return clip
    if isinstance(clip, nn.Module):
        raise TypeError(f'clip must be a config dict or a FrozenCLIPEncoder, got '
                        f'{type(clip).__name__}')
    if not isinstance(clip, dict) or 'type' not in clip:
        raise ValueError("clip must be a config dict with a 'type', e.g. "
                         "dict(type='OpenCLIPEncoder', checkpoint='ViT-B-32.pt'), got "
                         f'{clip!r}')
    return MODELS.build(clip)
