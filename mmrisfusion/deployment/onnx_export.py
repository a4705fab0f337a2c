"""Export RIS-FUSION to ONNX, with what a runtime needs to reproduce it without PyTorch.

The exported graph is the whole network, text encoder included::

    token_ids (1, T) int64, token_mask (1, T) int64,
    vis (1, 3, H, W) float32, ir (1, C, H, W) float32 (normalised, as the data preprocessor)
        -> seg_logits (1, K, H, W) float32 at the input size,
           fused (1, 3, H, W) float32, the fused RGB image in [0, 1]

Beside ``model.onnx`` the export writes ``model.json`` (the preprocessing read from the
config: decoding, resizing, normalisation, tokenisation; the post-processing; the export
check) and ``model.tokenizer.json`` (the fast tokenizer, loadable with the ``tokenizers``
package alone), so ``demo/onnx_demo.py`` runs the model with ONNX Runtime and no PyTorch.
The batch size is fixed at 1 and the input size at the export's (H, W).
"""
import copy
import json
import logging
import platform
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from mmrisfusion.apis.inference import inference_pipeline
from mmrisfusion.models.data_preprocessor import RISDataPreProcessor
from mmrisfusion.models.segmentors import RISFusion
from mmrisfusion.models.utils.color import denormalize
from mmrisfusion.version import __version__

INPUT_NAMES = ('token_ids', 'token_mask', 'vis', 'ir')
OUTPUT_NAMES = ('seg_logits', 'fused')
META_FORMAT = 'mmrisfusion-onnx'
META_VERSION = 1
#: The largest |ONNX Runtime - PyTorch| an export may show on its check inputs.
DEFAULT_TOLERANCE = 1e-4
SUPPORTED_STEPS = ('LoadRISImages', 'RISResize (keep_ratio=False)', 'TokenizeText',
                   'PackRISInputs')
# The check runs the graph on inputs other than the traced ones (another expression length,
# other images), so a value frozen into the graph at tracing shows as a difference.
CHECK_EXPRESSIONS = ('the person on the left',
                     'the second warm dog from the right, next to the big tree')
ONNX_HINT = 'the ONNX export needs onnx, onnxscript and onnxruntime: pip install -e ".[deploy]"'


class UnsupportedConfigError(ValueError):
    """The config describes a model or a pipeline the ONNX export cannot reproduce."""


class ExportCheckError(RuntimeError):
    """ONNX Runtime's outputs differ from PyTorch's by more than the tolerance."""


class RISFusionForExport(nn.Module):
    """RIS-FUSION as one function of tensors: what the ONNX graph computes.

    ``forward(token_ids, token_mask, vis, ir) -> (seg_logits, fused)``: the text encoder,
    then :meth:`RISFusion.forward_with_text_feats` (logits at the input size, before any
    resizing to the original image), and the fused image de-normalised to [0, 1] as
    ``RISFusion.predict`` gives it (``pred_fused``).

    Args:
        model (RISFusion): The model.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not isinstance(model, RISFusion):
            raise UnsupportedConfigError(
                f'the ONNX export takes RIS-FUSION models (RISFusion), got '
                f'{type(model).__name__}')
        self.model = model

    def forward(self, token_ids: Tensor, token_mask: Tensor, vis: Tensor,
                ir: Tensor) -> Tuple[Tensor, Tensor]:
        """Text encoder, fuser, backbone and decode head.

        Args:
            token_ids (Tensor): (B, T) int64 token ids.
            token_mask (Tensor): (B, T) int64, 1 for tokens, 0 for padding.
            vis (Tensor): (B, 3, H, W) normalised visible images.
            ir (Tensor): (B, C, H, W) normalised infrared images.

        Returns:
            tuple[Tensor, Tensor]: ``seg_logits`` (B, K, H, W) and ``fused``
            (B, 3, H, W) in [0, 1].
        """
        model = self.model
        text_feats, text_mask = model.text_encoder(token_ids, token_mask)
        fused, _, logits = model.forward_with_text_feats(vis, ir, text_feats, text_mask)
        return logits, denormalize(fused, model.fuser.mean_vis, model.fuser.std_vis)


def _type_name(step: dict) -> str:
    """A pipeline step's type as a short name (a class or a scoped name given)."""
    kind = step.get('type', '')
    return getattr(kind, '__name__', str(kind)).split('.')[-1]


def _stats(buffer: Tensor) -> List[float]:
    return [float(v) for v in buffer.flatten()]


def preprocessing_spec(model: nn.Module, shape: Optional[Tuple[int, int]] = None) -> dict:
    """What the runtime must do to an image pair and an expression, read from the config.

    Args:
        model (nn.Module): A RIS-FUSION model from :func:`mmrisfusion.apis.init_model`
            (with ``cfg``).
        shape (tuple[int, int], optional): The network's input (H, W). Defaults to None
            (the size the test pipeline resizes to).

    Returns:
        dict: ``preprocess`` (decoding, resizing, normalisation on the 0..255 scale),
        ``text`` (tokenizer folder, ``max_length``, ``pad_id``) and ``postprocess``.

    Raises:
        UnsupportedConfigError: The model is not RIS-FUSION, or its test pipeline or data
            preprocessor does something a fixed-size graph cannot reproduce.
    """
    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        raise AttributeError('the model has no `cfg`: build it with mmrisfusion.apis.init_model')
    where = f'config {cfg.filename}'
    if not isinstance(model, RISFusion):
        raise UnsupportedConfigError(f'{where}: the ONNX export takes RIS-FUSION models '
                                     f'(RISFusion), got {type(model).__name__}')
    steps = {}
    for step in inference_pipeline(cfg):
        name = _type_name(step)
        if name not in ('LoadRISImages', 'RISResize', 'TokenizeText', 'PackRISInputs') or (
                name == 'RISResize' and step.get('keep_ratio', False)):
            raise UnsupportedConfigError(
                f'{where}: the test pipeline step {step} is not supported by the ONNX export, '
                f'whose graph has a fixed input size; supported steps: {SUPPORTED_STEPS}')
        steps[name] = step
    missing = [name for name in ('LoadRISImages', 'RISResize', 'TokenizeText')
               if name not in steps]
    if missing:
        raise UnsupportedConfigError(
            f'{where}: the test pipeline lacks {missing}; the ONNX export needs the images '
            'loaded, resized to a fixed size (RISResize) and the expression tokenised')
    load, resize, tokenize = steps['LoadRISImages'], steps['RISResize'], steps['TokenizeText']
    scale = tuple(int(s) for s in resize.get('scale', (480, 480)))  # (w, h)
    height, width = (scale[1], scale[0]) if shape is None else (int(shape[0]), int(shape[1]))
    if height < 32 or width < 32:
        raise UnsupportedConfigError(f'the input shape must be at least 32x32, got '
                                     f'{height}x{width}')

    preprocessor = model.data_preprocessor
    if not isinstance(preprocessor, RISDataPreProcessor):
        raise UnsupportedConfigError(f'{where}: the ONNX export reproduces RISDataPreProcessor, '
                                     f'got {type(preprocessor).__name__}')
    divisor = preprocessor.size_divisor or 1
    if (preprocessor.size is not None and tuple(preprocessor.size) != (height, width)) or (
            height % divisor or width % divisor):
        raise UnsupportedConfigError(
            f'{where}: the data preprocessor pads {height}x{width} inputs (size='
            f'{preprocessor.size}, size_divisor={preprocessor.size_divisor}); export at a '
            'shape it leaves as it is')
    ir_channels = int(load.get('ir_channels', 3))
    return dict(
        preprocess=dict(
            decode_backend=load.get('decode_backend', 'pillow'),
            ir_channels=ir_channels,
            input_size=[height, width],
            resize_interpolation=resize.get('interpolation', 'bilinear'),
            resize_backend=resize.get('backend', 'pillow'),
            # (x - mean) / std on the 0..255 scale; one value or one per channel
            vis_mean=_stats(preprocessor.vis_mean), vis_std=_stats(preprocessor.vis_std),
            ir_mean=_stats(preprocessor.ir_mean), ir_std=_stats(preprocessor.ir_std)),
        text=dict(tokenizer_path=str(tokenize.get('tokenizer_path',
                                                  'data/pretrained/bert-base-uncased')),
                  max_length=int(tokenize.get('max_length', 20)),
                  pad_id=int(tokenize.get('pad_id', 0))),
        postprocess=dict(num_classes=int(model.out_channels),
                         align_corners=bool(model.align_corners)))


def save_tokenizer(tokenizer_path: str, out_file: Path) -> None:
    """Save the fast tokenizer as one ``tokenizer.json`` that behaves as ``TokenizeText``'s.

    ``TokenizeText`` encodes with the special tokens and cuts to ``max_length`` itself, so
    the saved tokenizer neither truncates nor pads (a folder's ``tokenizer.json`` may do
    both, e.g. to 128 tokens).

    Args:
        tokenizer_path (str): The local tokenizer folder of the config.
        out_file (Path): Where to write.
    """
    from mmrisfusion.datasets.transforms import load_tokenizer
    tokenizer = load_tokenizer(tokenizer_path)
    if not getattr(tokenizer, 'is_fast', False):
        raise UnsupportedConfigError(
            f'the tokenizer in {tokenizer_path} has no fast (Rust) version; the ONNX runtime '
            'side reads a tokenizer.json with the `tokenizers` package')
    from tokenizers import Tokenizer
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    backend.save(str(out_file))


def example_inputs(model: nn.Module, spec: dict, text: str, seed: int) -> Tuple[Tensor, ...]:
    """Inputs of the graph for ``text`` and random images, normalised as the model's are.

    Args:
        model (nn.Module): The model (its data preprocessor normalises).
        spec (dict): From :func:`preprocessing_spec`.
        text (str): An expression, tokenised as ``TokenizeText`` does.
        seed (int): Seed of the random images.

    Returns:
        tuple[Tensor, ...]: ``token_ids``, ``token_mask``, ``vis``, ``ir`` (batch of 1).
    """
    from mmrisfusion.datasets.transforms import TokenizeText
    text_cfg = spec['text']
    tokens = TokenizeText(text_cfg['tokenizer_path'], text_cfg['max_length'],
                          text_cfg['pad_id'])(dict(text=text))
    height, width = spec['preprocess']['input_size']
    rng = np.random.default_rng(seed)
    preprocessor = model.data_preprocessor
    images = {}
    for key, channels in (('vis', 3), ('ir', spec['preprocess']['ir_channels'])):
        pixels = torch.from_numpy(rng.integers(0, 256, (channels, height, width))).float()
        mean, std = getattr(preprocessor, f'{key}_mean'), getattr(preprocessor, f'{key}_std')
        images[key] = ((pixels - mean.cpu()) / std.cpu())[None]
    return (torch.from_numpy(tokens['token_ids'])[None],
            torch.from_numpy(tokens['token_mask'])[None], images['vis'], images['ir'])


def onnx_session(onnx_file: str, threads: Optional[int] = None):
    """An ONNX Runtime CPU session of ``onnx_file``.

    Args:
        onnx_file (str): The model.
        threads (int, optional): Intra-op threads. Defaults to None (ONNX Runtime's choice).

    Returns:
        onnxruntime.InferenceSession: The session.
    """
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(ONNX_HINT) from error
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(onnx_file), options,
                                        providers=['CPUExecutionProvider'])


def max_abs_diff(session, module: nn.Module,
                 inputs: Sequence[Tuple[Tensor, ...]]) -> Dict[str, float]:
    """The largest |ONNX Runtime - PyTorch| of each output over several inputs.

    Args:
        session (onnxruntime.InferenceSession): The exported model.
        module (nn.Module): The PyTorch module it was exported from.
        inputs (Sequence[tuple[Tensor, ...]]): Graph inputs, in :data:`INPUT_NAMES` order.

    Returns:
        dict[str, float]: Output name -> max abs difference.
    """
    diffs = dict.fromkeys(OUTPUT_NAMES, 0.0)
    for args in inputs:
        with torch.no_grad():
            expected = module(*args)
        got = session.run(list(OUTPUT_NAMES),
                          {name: arg.numpy() for name, arg in zip(INPUT_NAMES, args)})
        for name, ours, theirs in zip(OUTPUT_NAMES, got, expected):
            if ours.shape != tuple(theirs.shape):
                raise ExportCheckError(f'ONNX Runtime gives {name} of shape {ours.shape}, '
                                       f'PyTorch {tuple(theirs.shape)}')
            diffs[name] = max(diffs[name], float(np.abs(ours - theirs.numpy()).max()))
    return diffs


def float32_noise(module: nn.Module,
                  inputs: Sequence[Tuple[Tensor, ...]]) -> Dict[str, float]:
    """PyTorch's own float32 rounding: the largest |float32 - float64| of each output.

    LAVT's instance norms amplify rounding where a channel barely varies (flat image
    regions), so on some real images float32 PyTorch itself is 1e-4 to 1e-3 from the exact
    logits; a runtime that differs from it by as much is as exact as float32 allows
    (``tools/analysis_tools/check_reference.py`` weighs its differences the same way).

    Args:
        module (nn.Module): The float32 module.
        inputs (Sequence[tuple[Tensor, ...]]): Its inputs, in :data:`INPUT_NAMES` order.

    Returns:
        dict[str, float]: Output name -> max abs difference to the float64 run.
    """
    wide = copy.deepcopy(module).double()
    noise = dict.fromkeys(OUTPUT_NAMES, 0.0)
    for args in inputs:
        with torch.no_grad():
            single = module(*args)
            exact = wide(*(a.double() if a.is_floating_point() else a for a in args))
        for name, ours, theirs in zip(OUTPUT_NAMES, single, exact):
            noise[name] = max(noise[name], float((ours.double() - theirs).abs().max()))
    return noise


def export_onnx(model: nn.Module, out_file: str, shape: Optional[Tuple[int, int]] = None,
                opset: Optional[int] = None,
                tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Export the model, check it with ONNX Runtime and write what the runtime needs.

    Writes ``out_file`` (e.g. ``model.onnx``), ``model.json`` and ``model.tokenizer.json``
    beside it. The check runs ONNX Runtime and PyTorch on inputs other than the traced ones
    and compares every output; the metadata records the differences either way.

    Args:
        model (nn.Module): A RIS-FUSION model from :func:`mmrisfusion.apis.init_model`, on
            the CPU.
        out_file (str): The ``.onnx`` file to write.
        shape (tuple[int, int], optional): Input (H, W). Defaults to None (the size the test
            pipeline resizes to).
        opset (int, optional): ONNX opset. Defaults to None (the exporter's default).
        tolerance (float): The largest max abs difference accepted. Defaults to 1e-4.

    Returns:
        dict: The metadata written to ``model.json``, with ``check.max_abs_diff`` and, for
        scale, ``check.float32_noise`` (:func:`float32_noise` on the same inputs).

    Raises:
        UnsupportedConfigError: See :func:`preprocessing_spec`.
        ExportCheckError: The check found a difference above ``tolerance``.
    """
    try:
        import onnx
    except ImportError as error:
        raise ImportError(ONNX_HINT) from error
    spec = preprocessing_spec(model, shape)
    module = RISFusionForExport(model).eval()
    out_file = Path(out_file)
    if out_file.suffix != '.onnx':
        raise ValueError(f'the output file must end in .onnx, got {out_file}')
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tokenizer_file = out_file.with_suffix('.tokenizer.json')
    save_tokenizer(spec['text']['tokenizer_path'], tokenizer_file)

    inputs = [example_inputs(model, spec, text, seed)
              for seed, text in enumerate(CHECK_EXPRESSIONS)]
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    # onnxscript's constant folding logs a warning for every node it leaves unfolded
    # (e.g. 'Evaluation failed: cannot reshape array'): harmless, and the check below
    # compares the outputs anyway.
    folding_log = logging.getLogger('onnxscript.optimizer._constant_folding')
    level = folding_log.level
    folding_log.setLevel(logging.ERROR)
    try:
        torch.onnx.export(module, inputs[0], str(out_file), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), opset_version=opset, dynamo=True,
                          external_data=weight_bytes > 1.5 * 2**30, verbose=False)
    except Exception as error:
        raise RuntimeError(f'exporting {model.cfg.filename} to ONNX failed: {error}') from error
    finally:
        folding_log.setLevel(level)
    onnx_model = onnx.load(str(out_file), load_external_data=False)
    diffs = max_abs_diff(onnx_session(str(out_file)), module, inputs)
    noise = float32_noise(module, inputs)

    text = dict(spec.pop('text'), tokenizer=tokenizer_file.name)
    del text['tokenizer_path']  # the runtime reads the copy beside the model
    meta = dict(
        format=META_FORMAT, version=META_VERSION, mmrisfusion=__version__,
        config=str(model.cfg.filename),
        opset=max(op.version for op in onnx_model.opset_import if op.domain in ('', 'ai.onnx')),
        inputs=dict(
            token_ids=dict(shape=[1, text['max_length']], dtype='int64'),
            token_mask=dict(shape=[1, text['max_length']], dtype='int64'),
            vis=dict(shape=[1, 3, *spec['preprocess']['input_size']], dtype='float32'),
            ir=dict(shape=[1, spec['preprocess']['ir_channels'],
                           *spec['preprocess']['input_size']], dtype='float32')),
        outputs=dict(
            seg_logits=dict(shape=[1, spec['postprocess']['num_classes'],
                                   *spec['preprocess']['input_size']], dtype='float32'),
            fused=dict(shape=[1, 3, *spec['preprocess']['input_size']], dtype='float32',
                       range=[0, 1])),
        text=text, **spec,
        check=dict(max_abs_diff=diffs, float32_noise=noise, tolerance=tolerance,
                   passed=max(diffs.values()) <= tolerance, expressions=list(CHECK_EXPRESSIONS),
                   torch=torch.__version__, machine=platform.machine()))
    with open(out_file.with_suffix('.json'), 'w') as f:
        json.dump(meta, f, indent=2)
    if not meta['check']['passed']:
        raise ExportCheckError(f'ONNX Runtime differs from PyTorch by {diffs} (max abs), above '
                               f'the tolerance {tolerance:g}; {out_file} is not faithful')
    return meta
