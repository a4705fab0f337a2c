"""Build a model from a config, load its weights safely, and run it on one IR/VIS pair."""
import copy
import json
import re
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from torch import nn

from mmrisfusion.models.utils.predictions import class_argmax
from mmrisfusion.structures import RISDataSample
from mmrisfusion.utils.checkpoint import load_weights_only

ImageInput = Union[str, Path, np.ndarray]

OFFICIAL_KEYS = ('model', 'prefusion_model')


class RISResult(NamedTuple):
    """What :func:`inference_model` returns for one sample.

    Attributes:
        fused (np.ndarray | None): ``(H, W, 3)`` uint8 RGB fused image at the input's
            original size; None for a model that does not fuse.
        mask (np.ndarray | None): ``(H, W)`` bool mask of the referred object at the input's
            original size; None for a fusion-only model.
        logits (torch.Tensor | None): ``(num_classes, H, W)`` segmentation logits at the
            original size; None for a fusion-only model.
        data_sample (RISDataSample): The full predicted sample.
    """

    fused: Optional[np.ndarray]
    mask: Optional[np.ndarray]
    logits: Optional[torch.Tensor]
    data_sample: RISDataSample


def _read_state_dict(path: Path) -> tuple:
    """Read ``(state_dict, meta)`` from a ``.safetensors`` or weights-only ``.pth`` file."""
    if path.suffix == '.safetensors':
        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(str(path), framework='pt') as f:
            header = f.metadata() or {}
        meta = {}
        if 'dataset_meta' in header:
            meta['dataset_meta'] = json.loads(header['dataset_meta'])
        return load_file(str(path), device='cpu'), meta
    try:
        checkpoint = load_weights_only(str(path))
    except Exception as e:
        raise RuntimeError(
            f'{path} could not be loaded with weights only: it holds types beyond tensors and '
            "mmengine's metadata. An official RIS-FUSION checkpoint must first be converted "
            f'with tools/model_converters/risfusion_official.py. ({e})') from e
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{path} holds a {type(checkpoint).__name__}; expected a state dict '
                        "or a dict with a 'state_dict' key")
    if all(key in checkpoint for key in OFFICIAL_KEYS):
        raise ValueError(f'{path} is an official RIS-FUSION checkpoint (keys {OFFICIAL_KEYS}); '
                         'convert it with tools/model_converters/risfusion_official.py first')
    state_dict = checkpoint.get('state_dict', checkpoint)
    meta = checkpoint.get('meta', {}) if 'state_dict' in checkpoint else {}
    bad = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(f'{path}: entries {bad[:5]} of the state dict are not tensors; expected '
                        "a state dict or a dict with a 'state_dict' key")
    return state_dict, meta if isinstance(meta, dict) else {}


def load_model_checkpoint(model: nn.Module, checkpoint: Union[str, Path],
                          strict: bool = True) -> dict:
    """Load a checkpoint's weights into ``model``, never unpickling code.

    Reads mmengine ``.pth`` checkpoints (``{'state_dict', 'meta', ...}``, loaded with
    ``weights_only=True`` and mmengine's own types allow-listed), bare state dicts and
    ``.safetensors`` files. A ``module.`` prefix (a checkpoint saved from a DDP-wrapped
    model) is removed.

    Args:
        model (nn.Module): The model (not wrapped).
        checkpoint (str | Path): The file.
        strict (bool): Whether every key must match, both ways. Defaults to True.

    Returns:
        dict: The checkpoint's ``meta`` (``{}`` when it has none).
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint {path} does not exist; pass a file saved by '
                                'tools/train.py or written by a tools/model_converters script')
    state_dict, meta = _read_state_dict(path)
    state_dict = {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # tensors of other shapes: torch's message names no file
        raise RuntimeError(f'{path} does not match the model built from the config: '
                           f'{" ".join(str(error).split())}') from error
    if strict and (result.missing_keys or result.unexpected_keys):
        raise RuntimeError(
            f'{path} does not match the model built from the config: '
            f'{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:5]}), '
            f'{len(result.unexpected_keys)} unexpected keys (e.g. {result.unexpected_keys[:5]})')
    return meta


def init_model(config: Union[str, Path, Config], checkpoint: Optional[str] = None,
               device: str = 'cpu', cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a model from a config and, optionally, load its weights.

    Args:
        config (str | Path | Config): Config file or object.
        checkpoint (str, optional): A ``.pth`` (weights only) or ``.safetensors`` file,
            loaded strictly. Pretrained backbone files named in ``init_cfg`` are not read
            (``init_weights`` is not called); a text encoder built from a local Hugging Face
            folder still reads that folder, whose config defines its architecture.
            Defaults to None (random weights, as built).
        device (str): Device to put the model on. Defaults to 'cpu'.
        cfg_options (dict, optional): Overrides merged into the config. Defaults to None.

    Returns:
        nn.Module: The model in eval mode, with ``cfg`` (the config) and, when the
        checkpoint carries it, ``dataset_meta`` attached.
    """
    if isinstance(config, (str, Path)):
        config = Config.fromfile(str(config))
    elif not isinstance(config, Config):
        raise TypeError(f'config must be a file name or a Config, got {type(config).__name__}')
    else:
        config = copy.deepcopy(config)
    if cfg_options is not None:
        config.merge_from_dict(cfg_options)
    if 'model' not in config:
        raise KeyError(f'config {config.filename} has no `model` key')
    if 'train_cfg' in config.model:  # segmentors take one; fusion-only models do not
        config.model.train_cfg = None
    init_default_scope(config.get('default_scope', 'mmrisfusion'))
    from mmrisfusion.registry import MODELS
    model = MODELS.build(config.model)
    if checkpoint is not None:
        meta = load_model_checkpoint(model, checkpoint)
        if 'dataset_meta' in meta:
            model.dataset_meta = meta['dataset_meta']
    model.cfg = config
    model.to(device)
    model.eval()
    return model


def _pipeline_config(cfg: Config) -> list:
    """The pipeline evaluation runs: the test dataset's, else the config's ``test_pipeline``.

    The dataset's pipeline comes first: a leaf config may redefine it without touching the
    ``test_pipeline`` variable inherited from its base. Dataset wrappers (``dataset=`` as in
    ``MismatchedTextDataset``, ``datasets=[...]`` as in ``ConcatDataset``) are looked into,
    first dataset first.
    """
    node = cfg.get('test_dataloader', {}).get('dataset')
    while isinstance(node, dict) and 'pipeline' not in node:
        node = node.get('dataset', (node.get('datasets') or [None])[0])
    pipeline = node.get('pipeline') if isinstance(node, dict) else None
    if pipeline is None:
        pipeline = cfg.get('test_pipeline')
    if pipeline is None:
        raise KeyError(f'config {cfg.filename} has neither `test_dataloader.dataset.pipeline` '
                       'nor `test_pipeline`')
    return copy.deepcopy(list(pipeline))


def _image_entry(image: ImageInput, key: str, gray: bool) -> dict:
    """The dataset-style entry of one input: ``{key}_path`` or PNG ``{key}_bytes``.

    Arrays are encoded losslessly (PNG) so they go through the config's own loading
    transform, exactly like files and parquet bytes do.
    """
    if isinstance(image, (str, Path)):
        if not Path(image).is_file():
            raise FileNotFoundError(f'{key.upper()} image {image} does not exist')
        return {f'{key}_path': str(image)}
    if not isinstance(image, np.ndarray):
        raise TypeError(f'{key.upper()} image must be a path or a numpy array, got '
                        f'{type(image).__name__}')
    array = image
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3
                                                           and array.shape[-1] == 3)):
        raise ValueError(f'{key.upper()} array must be uint8 (H, W), (H, W, 1) or (H, W, 3) '
                         f'RGB; got {array.dtype} {array.shape}')
    if gray and array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2GRAY)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode('.png', array)
    if not ok:
        raise ValueError(f'could not encode the {key.upper()} array as PNG')
    return {f'{key}_bytes': encoded.tobytes()}


def _is_annotation_loader(transform_cfg: dict) -> bool:
    """Whether a pipeline step loads ground truth (``LoadRISAnnotation``, mmseg's
    ``LoadAnnotations``): skipped, inference has none."""
    return 'Annotation' in str(transform_cfg.get('type', ''))


def inference_pipeline(cfg: Config) -> list:
    """The steps inference runs: the config's test pipeline without the ground-truth loading.

    Args:
        cfg (Config): A model's config.

    Returns:
        list[dict]: Transform configs (copies).
    """
    return [t for t in _pipeline_config(cfg) if not _is_annotation_loader(t)]


def _model_cfg(model: nn.Module) -> Config:
    """The config :func:`init_model` attached, with its default scope made current."""
    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        raise AttributeError('the model has no `cfg`: build it with mmrisfusion.apis.init_model')
    init_default_scope(cfg.get('default_scope', 'mmrisfusion'))
    return cfg


def _pair_results(vis: ImageInput, ir: ImageInput, index: int,
                  caller: str = 'inference_model') -> dict:
    """The dataset-style results dict of one pair, before the pipeline."""
    name = Path(vis).name if isinstance(vis, (str, Path)) else f'{index}.png'
    return dict(img_name=name, sample_idx=index, source=f'{caller}:{name}',
                seg_fields=[], **_image_entry(vis, 'vis', gray=False),
                **_image_entry(ir, 'ir', gray=True))


def inference_model(model: nn.Module, vis: Union[ImageInput, Sequence[ImageInput]],
                    ir: Union[ImageInput, Sequence[ImageInput]],
                    text: Union[str, Sequence[str], None] = None,
                    amp: bool = False) -> Union[RISResult, List[RISResult]]:
    """Fuse and segment one IR/VIS pair (or a list of them) with an expression.

    The inputs go through the config's test pipeline (without the ground-truth loading),
    so resizing, tokenisation and packing are those of evaluation.

    Args:
        model (nn.Module): A model from :func:`init_model`.
        vis (str | Path | np.ndarray | Sequence): Visible image: a file, or an
            ``(H, W, 3)`` uint8 RGB array; or a list of them.
        ir (str | Path | np.ndarray | Sequence): Infrared image: a file, or an
            ``(H, W)``/``(H, W, 3)`` uint8 array; or a list (same length as ``vis``).
        text (str | Sequence[str], optional): The referring expression(s). Defaults to
            None (fusion-only models).
        amp (bool): Run the network under autocast: bfloat16 on CPUs (several times faster
            where they have AVX-512 BF16 or AMX), float16 on GPUs. The results are float32.
            Defaults to False.

    Returns:
        RISResult | list[RISResult]: One result per pair; a list when lists were given.
    """
    is_batch = isinstance(vis, (list, tuple))
    vis_list = list(vis) if is_batch else [vis]
    ir_list = list(ir) if isinstance(ir, (list, tuple)) else [ir]
    if text is None or isinstance(text, str):
        text_list = [text] * len(vis_list)
    else:
        text_list = list(text)
    if not len(vis_list) == len(ir_list) == len(text_list):
        raise ValueError(f'got {len(vis_list)} VIS, {len(ir_list)} IR images and '
                         f'{len(text_list)} expressions; they must pair up')
    pipeline = Compose(inference_pipeline(_model_cfg(model)))
    samples = []
    for index, (vis_image, ir_image, expression) in enumerate(
            zip(vis_list, ir_list, text_list)):
        results = _pair_results(vis_image, ir_image, index)
        if expression is not None:
            results['text'] = expression
        samples.append(pipeline(results))
    device_type = next(model.parameters()).device.type
    with torch.no_grad(), torch.autocast(
            device_type, dtype=torch.bfloat16 if device_type == 'cpu' else torch.float16,
            enabled=amp):
        outputs = model.test_step(pseudo_collate(samples))
    align_corners = bool(getattr(model, 'align_corners', False))
    results = [_to_result(sample, align_corners) for sample in outputs]
    return results if is_batch else results[0]


def _to_result(sample: RISDataSample, align_corners: bool) -> RISResult:
    """Unpack a predicted sample into numpy images and logits at the original size.

    A config may evaluate at the network's resolution (``test_cfg.output_shape='img_shape'``,
    the published MM-RIS protocol) and the fused image is always at that resolution, often a
    square that ignores the aspect ratio. A user of one pair wants the original geometry, so
    logits and fused image are resized (bilinear) to ``ori_shape`` and the mask is the
    argmax of the resized logits, as mmseg's post-processing does.
    """
    from mmrisfusion.visualization.draw import to_binary_mask, to_uint8_image
    ori_shape = tuple(sample.metainfo.get('ori_shape', ()))[:2]

    def to_original(image: torch.Tensor) -> torch.Tensor:
        if not ori_shape or tuple(image.shape[-2:]) == ori_shape:
            return image
        return F.interpolate(image[None].float(), size=ori_shape, mode='bilinear',
                             align_corners=align_corners)[0]

    fused = getattr(sample, 'pred_fused', None)
    logits = getattr(sample, 'seg_logits', None)
    pred = getattr(sample, 'pred_sem_seg', None)
    mask = None if pred is None else to_binary_mask(pred.data)
    if logits is not None:
        logits = to_original(logits.data.detach().cpu())
        # Two classes: argmax; one (sigmoid) class: logit > 0, i.e. probability > 0.5.
        mask = (class_argmax(logits, 0) > 0 if logits.shape[0] > 1 else logits[0] > 0).numpy()
    return RISResult(
        fused=None if fused is None else to_uint8_image(
            to_original(fused.data.detach().cpu()).clamp(0, 1)),
        mask=mask,
        logits=logits,
        data_sample=sample)


def _is_text_step(transform_cfg: dict) -> bool:
    """Whether a pipeline step reads the expression (``TokenizeText``)."""
    return 'TokenizeText' in str(transform_cfg.get('type', ''))


class PairInferencer:
    """Many expressions on one IR/VIS pair: the images go through the pipeline once.

    The inference pipeline (:func:`inference_pipeline`) is split before its first
    ``TokenizeText``: the steps before it (decoding, resizing) run once, here; each call
    runs the rest (tokenisation, packing) and the network. An interactive session asks
    several questions about one pair without decoding and resizing the images again; the
    outputs are those of :func:`inference_model`.

    Example:
        >>> pair = PairInferencer(model, 'vis.png', 'ir.png')
        >>> pair('the person on the left').mask, pair('the warm car').mask

    Args:
        model (nn.Module): A model from :func:`init_model`.
        vis (str | Path | np.ndarray): Visible image: a file or an ``(H, W, 3)`` uint8 RGB
            array.
        ir (str | Path | np.ndarray): Infrared image: a file or an ``(H, W)``/``(H, W, 3)``
            uint8 array.
    """

    def __init__(self, model: nn.Module, vis: ImageInput, ir: ImageInput) -> None:
        steps = inference_pipeline(_model_cfg(model))
        split = next((k for k, step in enumerate(steps) if _is_text_step(step)), len(steps))
        self.model = model
        self._text_pipeline = Compose(steps[split:])
        self.prepared = Compose(steps[:split])(_pair_results(vis, ir, 0, 'PairInferencer'))

    @property
    def ori_shape(self) -> Tuple[int, int]:
        """(H, W) of the pair as loaded."""
        return tuple(self.prepared['ori_shape'][:2])

    def __call__(self, text: Optional[str]) -> RISResult:
        """Fuse and segment the pair with one expression.

        Args:
            text (str, optional): The referring expression (None for fusion-only models).

        Returns:
            RISResult: As :func:`inference_model` returns it.
        """
        results = copy.deepcopy(self.prepared)
        if text is not None:
            results['text'] = text
        _model_cfg(self.model)  # the model's default scope, for the remaining steps
        sample = self._text_pipeline(results)
        with torch.no_grad():
            output = self.model.test_step(pseudo_collate([sample]))[0]
        return _to_result(output, bool(getattr(self.model, 'align_corners', False)))
