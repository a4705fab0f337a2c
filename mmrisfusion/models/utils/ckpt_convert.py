"""Convert official RIS-FUSION checkpoints to this project's parameter names.

Official checkpoints (SPEC.md section 7) hold ``{'model': LAVT state dict,
'prefusion_model': UNetFuser state dict, 'epoch', 'args'}``.
"""
from collections import OrderedDict
from typing import Dict

from torch import Tensor

# --- The fuser ('prefusion_model') ---------------------------------------------------------
#
# UNetFuser keeps the published parameter names, so the mapping is the identity:
# official ``<key>`` -> ``<key>`` of :class:`~mmrisfusion.models.fusers.UNetFuser`, i.e.
# ``fuser.<key>`` inside a segmentor whose fuser attribute is ``fuser``.

_FUSER_BUFFERS = ('mean_vis', 'std_vis', 'mean_ir', 'std_ir')
_FUSER_ANCHOR = 'net.y_inc.block.0.weight'
_NUM_LEVELS = 4


def convert_official_fuser(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Map an official ``prefusion_model`` state dict onto :class:`UNetFuser`'s names.

    The mapping is the identity (our modules keep the published names); a ``module.``
    prefix left by DistributedDataParallel is removed. The result loads with
    ``UNetFuser(**official_fuser_config(sd)).load_state_dict(result, strict=True)``.

    Args:
        state_dict (dict[str, Tensor]): The official ``checkpoint['prefusion_model']``.

    Returns:
        OrderedDict[str, Tensor]: The same tensors under this project's names.
    """
    if not isinstance(state_dict, dict):
        raise TypeError('convert_official_fuser expects the state dict in '
                        "checkpoint['prefusion_model'], got "
                        f'{type(state_dict).__name__}')
    if state_dict and all(key.startswith('module.') for key in state_dict):
        state_dict = {key[len('module.'):]: value for key, value in state_dict.items()}
    missing = [key for key in (*_FUSER_BUFFERS, _FUSER_ANCHOR) if key not in state_dict]
    if missing:
        raise KeyError(f'not an official RIS-FUSION fuser state dict: missing {missing} '
                       "(expected checkpoint['prefusion_model'] of the official release)")
    return OrderedDict(state_dict)


def official_fuser_config(state_dict: Dict[str, Tensor]) -> dict:
    """Infer the :class:`UNetFuser` config of an official fuser state dict from its shapes.

    ``num_heads`` does not show in any shape: the published value (4) is used.

    Args:
        state_dict (dict[str, Tensor]): The official ``checkpoint['prefusion_model']`` (or
            its conversion by :func:`convert_official_fuser`).

    Returns:
        dict: ``dict(type='UNetFuser', base_channels=..., text_dim=..., token_dim=...,
        num_heads=4, inject_levels=(...), fusion_block=dict(type='LangGatedFusion',
        embed_dims=..., gate_channels=...), vis_mean=..., vis_std=..., ir_mean=...,
        ir_std=...)``.
    """
    sd = convert_official_fuser(state_dict)
    levels = tuple(level for level in range(1, _NUM_LEVELS + 1)
                   if f'net.lang_l{level}.pwam.q_proj.weight' in sd)
    cfg = dict(type='UNetFuser', base_channels=int(sd[_FUSER_ANCHOR].shape[0]), num_heads=4,
               inject_levels=levels, fusion_block=dict(type='LangGatedFusion'))
    if levels:
        cfg['text_dim'] = int(sd['net.txt.proj.weight'].shape[1])
        cfg['token_dim'] = int(sd['net.txt.proj.weight'].shape[0])
        block = f'net.lang_l{levels[0]}'
        cfg['fusion_block'].update(
            embed_dims=int(sd[f'{block}.pwam.q_proj.weight'].shape[0]),
            gate_channels=int(sd[f'{block}.fuse_gate.0.weight'].shape[0]))
    for ours, theirs in (('vis_mean', 'mean_vis'), ('vis_std', 'std_vis'),
                         ('ir_mean', 'mean_ir'), ('ir_std', 'std_ir')):
        cfg[ours] = tuple(float(x) for x in sd[theirs].flatten())
    return cfg
