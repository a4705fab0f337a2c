"""The file format of the derived tiny RIS-FUSION reference in ``tests/data/risfusion/``.

The published tiny reference (an official-layout checkpoint of random float32 weights and the
published code's outputs) is 29 MB and random weights do not compress, so the tests carry a
derived one (how it was made and why: ``tests/data/README.md``):

- ``tiny_int8.safetensors``: the official checkpoint layout with every floating tensor of
  :data:`MIN_QUANTISED_NUMEL` or more values stored as int8 codes and one float32 scale per
  tensor; the smaller ones (the fuser's normalisation buffers, a few 1-2 value biases) and the
  integer tensors are stored unchanged. :func:`load_checkpoint` rebuilds the float32
  checkpoint (``code.float() * scale``, one IEEE float32 product, the same everywhere).
- ``io_tiny.safetensors``: the inputs, VIS and IR as the 8-bit images they were normalised
  from (:func:`normalise` gives the published float32 inputs bit for bit), and our outputs.
  :func:`load_io` returns the layout of the published IO file.

The script that writes both files is ``tests/data/make_test_data.py``.
"""
import argparse
import json
from pathlib import Path
from typing import Dict, Tuple, Union

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

FORMAT = 'mmrisfusion tiny reference, int8 weights, version 1'
#: The two state dicts of an official RIS-FUSION checkpoint.
PARTS = ('model', 'prefusion_model')
#: Floating tensors with fewer values stay float32 (21 values in the tiny reference).
MIN_QUANTISED_NUMEL = 16
#: The published inputs are ``(uint8 / 255 - mean) / std`` in float32 with these ImageNet
#: statistics (torchvision's ToTensor and Normalize).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The IO entries that are stored as they are (float32 or int64).
PLAIN_IO_KEYS = ('text_feats', 'text_mask', 'fused', 'logits', 'dice_loss', 'fusion_loss_raw',
                 'fusion_loss_weighted')

PathLike = Union[str, Path]


def quantise(tensor: Tensor) -> Tuple[Tensor, Tensor]:
    """Symmetric int8 codes and the float32 scale ``max|x| / 127`` of one tensor.

    Args:
        tensor (Tensor): A floating tensor.

    Returns:
        tuple[Tensor, Tensor]: The int8 codes and the 0-d float32 scale (1 for a zero tensor).
    """
    tensor = tensor.float()
    scale = tensor.abs().max() / 127
    if scale == 0:
        scale = torch.ones(())
    return torch.round(tensor / scale).clamp(-127, 127).to(torch.int8), scale


def quantise_checkpoint(checkpoint: dict) -> dict:
    """The official checkpoint with its weights replaced by their int8 reconstruction.

    Args:
        checkpoint (dict): ``{'model', 'prefusion_model', 'epoch', 'args'}``.

    Returns:
        dict: The same layout, every quantised tensor replaced by ``code.float() * scale``:
        what :func:`load_checkpoint` gives back after :func:`save_checkpoint`.
    """
    out = dict(checkpoint)
    for part in PARTS:
        out[part] = {key: _dequantise(*quantise(value)) if _is_quantised(value) else value
                     for key, value in checkpoint[part].items()}
    return out


def save_checkpoint(checkpoint: dict, path: PathLike) -> None:
    """Write an official-layout checkpoint as int8 codes and scales (safetensors).

    Args:
        checkpoint (dict): ``{'model', 'prefusion_model', 'epoch', 'args'}``; ``args`` is an
            ``argparse.Namespace`` of JSON values.
        path (str | Path): The ``.safetensors`` file to write.
    """
    tensors = {}
    for part in PARTS:
        for key, value in checkpoint[part].items():
            if _is_quantised(value):
                tensors[f'code/{part}/{key}'], tensors[f'scale/{part}/{key}'] = quantise(value)
            else:
                tensors[f'plain/{part}/{key}'] = value.contiguous()
    metadata = dict(format=FORMAT, epoch=json.dumps(checkpoint['epoch']),
                    args=json.dumps(vars(checkpoint['args'])),
                    keys=json.dumps({part: list(checkpoint[part]) for part in PARTS}))
    save_file(tensors, str(path), metadata=metadata)


def load_checkpoint(path: PathLike) -> dict:
    """Rebuild the float32 official-layout checkpoint from :func:`save_checkpoint`'s file.

    Args:
        path (str | Path): The ``.safetensors`` file.

    Returns:
        dict: ``{'model', 'prefusion_model', 'epoch', 'args'}`` in the published key order,
        ``args`` an ``argparse.Namespace``, as ``torch.load`` of an official checkpoint gives.
    """
    tensors, metadata = _read(path)
    out = dict(epoch=json.loads(metadata['epoch']),
               args=argparse.Namespace(**json.loads(metadata['args'])))
    for part, keys in json.loads(metadata['keys']).items():
        out[part] = {}
        for key in keys:
            plain = tensors.get(f'plain/{part}/{key}')
            out[part][key] = plain if plain is not None else _dequantise(
                tensors[f'code/{part}/{key}'], tensors[f'scale/{part}/{key}'])
    return {key: out[key] for key in (*PARTS, 'epoch', 'args')}


def normalise(images: Tensor) -> Tensor:
    """8-bit RGB images (B, 3, H, W) as the published float32 network inputs."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def to_uint8(inputs: Tensor) -> Tensor:
    """The 8-bit images that :func:`normalise` turns into ``inputs``, checked bit for bit.

    Raises:
        ValueError: When no 8-bit image gives exactly these inputs.
    """
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    images = ((inputs * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)
    if not torch.equal(normalise(images), inputs):
        raise ValueError('the inputs are not (uint8 / 255 - ImageNet mean) / std in float32')
    return images


def save_io(io: dict, path: PathLike) -> None:
    """Write an IO dict of the published layout compactly (safetensors).

    VIS and IR are stored as the 8-bit images they come from (IR, gray replicated to three
    channels, as one channel), the target as uint8; outputs as float32.

    Args:
        io (dict): ``vis``, ``ir``, ``text_feats``, ``text_mask``, ``target``, ``fused``,
            ``logits``, ``backbone_outs`` (list), ``dice_loss``, ``fusion_loss_raw``,
            ``fusion_loss_weighted`` and ``fusion_loss_terms`` (dict of scalars).
        path (str | Path): The ``.safetensors`` file to write.

    Raises:
        ValueError: When IR is not gray or the target not 0/1, which this format cannot hold.
    """
    ir = to_uint8(io['ir'])
    if not (torch.equal(ir[:, :1], ir[:, 1:2]) and torch.equal(ir[:, :1], ir[:, 2:])):
        raise ValueError('IR must be gray (three equal channels) to be stored as one')
    if not ((io['target'] == 0) | (io['target'] == 1)).all():
        raise ValueError('the target must hold only 0 and 1')
    tensors = dict(vis_uint8=to_uint8(io['vis']), ir_uint8=ir[:, :1].contiguous(),
                   target_uint8=io['target'].to(torch.uint8))
    tensors.update((key, io[key].float().contiguous() if io[key].is_floating_point()
                    else io[key].contiguous()) for key in PLAIN_IO_KEYS)
    tensors.update((f'backbone_outs/{i}', out.float().contiguous())
                   for i, out in enumerate(io['backbone_outs']))
    tensors.update((f'fusion_loss_terms/{name}', torch.as_tensor(value).float())
                   for name, value in io['fusion_loss_terms'].items())
    metadata = dict(format=FORMAT, terms=json.dumps(list(io['fusion_loss_terms'])))
    save_file(tensors, str(path), metadata=metadata)


def load_io(path: PathLike) -> dict:
    """Read :func:`save_io`'s file in the layout of the published IO file.

    Args:
        path (str | Path): The ``.safetensors`` file.

    Returns:
        dict: The published IO layout: float32 normalised ``vis`` and ``ir`` (B, 3, H, W),
        int64 ``target``, ``backbone_outs`` a list, ``fusion_loss_terms`` a dict.
    """
    tensors, metadata = _read(path)
    io = dict(vis=normalise(tensors['vis_uint8']),
              ir=normalise(tensors['ir_uint8'].expand(-1, 3, -1, -1)))
    io.update((key, tensors[key]) for key in PLAIN_IO_KEYS)
    io['target'] = tensors['target_uint8'].long()
    count = sum(key.startswith('backbone_outs/') for key in tensors)
    io['backbone_outs'] = [tensors[f'backbone_outs/{i}'] for i in range(count)]
    io['fusion_loss_terms'] = {name: tensors[f'fusion_loss_terms/{name}']
                               for name in json.loads(metadata['terms'])}
    return io


def _is_quantised(value: Tensor) -> bool:
    return value.is_floating_point() and value.numel() >= MIN_QUANTISED_NUMEL


def _dequantise(code: Tensor, scale: Tensor) -> Tensor:
    return code.float() * scale


def _read(path: PathLike) -> Tuple[Dict[str, Tensor], Dict[str, str]]:
    """All tensors and the metadata of a file of this format."""
    with safe_open(str(path), framework='pt') as file:
        metadata = file.metadata() or {}
        if metadata.get('format') != FORMAT:
            raise ValueError(f'{path} is not a tiny reference file of the format {FORMAT!r}')
        return {key: file.get_tensor(key) for key in file.keys()}, metadata
