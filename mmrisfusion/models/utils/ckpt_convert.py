"""Convert official RIS-FUSION, LAVT and LDFusion checkpoints to this project's parameter names.

Official RIS-FUSION checkpoints (docs/risfusion.md#official-checkpoints) hold ``{'model': LAVT
state dict, 'prefusion_model': UNetFuser state dict, 'epoch', 'args'}``. LAVT's own
checkpoints (docs/risfusion.md#lavt-checkpoints) hold ``{'model', 'optimizer', 'epoch',
'args', 'lr_scheduler'}`` and BERT either inside ``model`` or as ``bert_model``. LDFusion's are
two bare state dicts, encoder and decoder (docs/ldfusion.md#published-checkpoints).
"""
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmrisfusion.utils.checkpoint import load_weights_only

from ..fusers.constants import NORM_STATS, NUM_LEVELS

# --- The fuser ('prefusion_model') ---------------------------------------------------------
#
# UNetFuser keeps the published parameter names, so the mapping is the identity:
# official ``<key>`` -> ``<key>`` of :class:`~mmrisfusion.models.fusers.UNetFuser`, i.e.
# ``fuser.<key>`` inside a segmentor whose fuser attribute is ``fuser``.

_FUSER_ANCHOR = 'net.y_inc.block.0.weight'


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
    missing = [key for key in (*NORM_STATS, _FUSER_ANCHOR) if key not in state_dict]
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
    levels = tuple(level for level in range(1, NUM_LEVELS + 1)
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
    for ours, theirs in zip(('vis_mean', 'vis_std', 'ir_mean', 'ir_std'), NORM_STATS):
        cfg[ours] = tuple(float(x) for x in sd[theirs].flatten())
    return cfg


# --------------------------------------------------------------------------------------------
# LAVT / Swin: official Swin ImageNet checkpoints, the official RIS-FUSION ``model`` (LAVT
# backbone + SimpleDecoding), Hugging Face BERT weights, and the whole official checkpoint.
# --------------------------------------------------------------------------------------------

#: bert-base-uncased, the text encoder of RIS-FUSION and LAVT (Hugging Face config values).
BERT_BASE_CONFIG = dict(model_type='bert', vocab_size=30522, hidden_size=768,
                        num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                        max_position_embeddings=512, type_vocab_size=2)
#: Official LAVT PWAM parameter names -> :class:`PWAM` names.
_LAVT_PWAM_NAMES = {
    'vis_project.0': 'vis_proj',
    'image_lang_att.f_query.0': 'query_proj',
    'image_lang_att.f_key.0': 'key_proj',
    'image_lang_att.f_value.0': 'value_proj',
    'image_lang_att.W.0': 'out_proj',
    'project_mm.0': 'mm_proj',
}
#: Official LAVT language gate (``res_gate``, a Sequential) -> :class:`LanguageGate` names.
_LAVT_GATE_NAMES = {'0': 'fc1', '2': 'fc2'}
#: Official Swin block parameter prefixes -> mmseg ``SwinBlock`` names.
_SWIN_BLOCK_NAMES = (('attn.', 'attn.w_msa.'), ('mlp.fc1.', 'ffn.layers.0.0.'),
                     ('mlp.fc2.', 'ffn.layers.1.'))


def swin_relative_position_index(window_size: int) -> Tensor:
    """The relative position index of a ``window_size`` window (official Swin formula).

    Args:
        window_size (int): Side of the attention window.

    Returns:
        Tensor: ``(window_size**2, window_size**2)`` int64 indices into the bias table.
    """
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size),
                                        indexing='ij')).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return relative[:, :, 0] * (2 * window_size - 1) + relative[:, :, 1]


def resize_relative_position_table(table: Tensor, window_size: int) -> Tensor:
    """Resize a relative position bias table to another window (bicubic, as Swin-Seg does).

    Args:
        table (Tensor): ``((2w-1)**2, heads)`` table of a ``w`` window.
        window_size (int): The new window side.

    Returns:
        Tensor: ``((2*window_size-1)**2, heads)``; ``table`` itself if the size matches.
    """
    side = int(round(table.shape[0]**0.5))
    new_side = 2 * window_size - 1
    if side * side != table.shape[0]:
        raise ValueError(f'a relative position table must have a square number of rows, '
                         f'got {tuple(table.shape)}')
    if side == new_side:
        return table
    heads = table.shape[1]
    grid = table.float().permute(1, 0).reshape(1, heads, side, side)
    grid = F.interpolate(grid, size=(new_side, new_side), mode='bicubic')
    return grid.reshape(heads, new_side * new_side).permute(1, 0).contiguous().to(table.dtype)


def _convert_swin_key(key: str) -> Optional[str]:
    """Our name for one official (LAVT-)Swin key, or None for the ones we drop.

    Raises:
        KeyError: For a key of no known official Swin or LAVT layout.
    """
    parts = key.split('.')
    if parts[0] == 'patch_embed' and parts[1] in ('proj', 'norm'):
        return '.'.join(['patch_embed', 'projection' if parts[1] == 'proj' else 'norm',
                         *parts[2:]])
    if parts[0] == 'layers' and len(parts) > 3:
        stage, kind, rest = parts[1], parts[2], '.'.join(parts[3:])
        if kind == 'blocks':
            block, name = rest.split('.', 1)
            if name == 'attn_mask':  # a buffer of the classification code, recomputed
                return None
            for old, new in _SWIN_BLOCK_NAMES:
                if name.startswith(old):
                    name = new + name[len(old):]
                    break
            return f'stages.{stage}.blocks.{block}.{name}'
        if kind == 'downsample':
            return f'downsamples.{stage}.{rest}'
        if kind == 'fusion':
            module, param = rest.rsplit('.', 1)
            if module in _LAVT_PWAM_NAMES:
                return f'pwams.{stage}.{_LAVT_PWAM_NAMES[module]}.{param}'
        if kind == 'res_gate' and parts[3] in _LAVT_GATE_NAMES:
            return f'lang_gates.{stage}.{_LAVT_GATE_NAMES[parts[3]]}.{parts[4]}'
    if re.fullmatch(r'norm\d+\.(weight|bias)', key):  # LAVT's per-stage output norms
        return key
    if parts[0] in ('norm', 'head'):  # the classifier of the ImageNet model
        return None
    raise KeyError(f'{key!r} is not a key of an official Swin or LAVT backbone checkpoint')


def convert_swin_official(state_dict: Dict[str, Tensor],
                          window_size: Optional[int] = None) -> 'OrderedDict[str, Tensor]':
    """Official Swin weights -> :class:`LAVTSwinTransformer` names.

    Takes the ImageNet checkpoints of microsoft/Swin-Transformer (e.g.
    ``swin_base_patch4_window12_384_22k.pth``'s ``model``) and the ``backbone.`` part of an
    official LAVT / RIS-FUSION checkpoint (prefix removed). Renames to mmseg's Swin names
    (patch merging keeps the official channel order, see ``SwinPatchMerging``), maps LAVT's
    PWAMs, gates and output norms, drops the classifier, the final norm and the
    ``attn_mask`` buffers, and, when ``window_size`` differs from the checkpoint's, resizes
    the relative position tables (bicubic) and recomputes their indices. Weights already in
    our names (a file written by ``tools/model_converters/swin_official.py``) only get the
    window resizing.

    Args:
        state_dict (dict[str, Tensor]): The official weights.
        window_size (int, optional): The window of the model to load into. Defaults to None
            (keep the checkpoint's).

    Returns:
        OrderedDict[str, Tensor]: The weights in our names.

    Raises:
        KeyError: For a key of no known layout (e.g. ``absolute_pos_embed``, which
            LAVT does not use).
    """
    # A file this function already wrote (tools/model_converters/swin_official.py) keeps its
    # names; only the window may still need resizing.
    ours = any(k.startswith('stages.') for k in state_dict)
    converted = OrderedDict()
    for key, value in state_dict.items():
        new_key = key if ours else _convert_swin_key(key)
        if new_key is None:
            continue
        if window_size is not None and new_key.endswith('relative_position_bias_table'):
            value = resize_relative_position_table(value, window_size)
        elif window_size is not None and new_key.endswith('relative_position_index'):
            value = swin_relative_position_index(window_size)
        converted[new_key] = value
    return converted


def _decoder_key(name: str, num_levels: int) -> str:
    """Our ``SimpleDecodingHead`` name for an official ``SimpleDecoding`` parameter."""
    match = re.fullmatch(r'(conv|bn)([12])_(\d)\.(.+)', name)
    if match is None:
        raise KeyError(f'classifier.{name!r} is not a key of LAVT\'s SimpleDecoding')
    kind, conv, level, param = match.groups()
    if (kind, conv, level) == ('conv', '1', '1'):
        return f'conv_seg.{param}'
    fuse = num_levels - int(level)  # level 4 (deepest + next) is the first fusion
    layer = 'conv' if kind == 'conv' else 'bn'
    return f'fuse_convs.{fuse}.{int(conv) - 1}.{layer}.{param}'


def convert_lavt_official(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """The ``model`` of an official RIS-FUSION / LAVT checkpoint -> our segmentor names.

    (LAVT's ``lavt_one`` also holds BERT in ``model``: :func:`split_lavt_checkpoint` takes it
    out first.)

    ``backbone.*`` goes through :func:`convert_swin_official` to ``backbone.*`` of
    :class:`LAVTSwinTransformer`; ``classifier.*`` (``SimpleDecoding``) to ``decode_head.*``
    of :class:`SimpleDecodingHead`.

    Args:
        state_dict (dict[str, Tensor]): The official ``model`` state dict.

    Returns:
        OrderedDict[str, Tensor]: Weights named as in ``RISFusion`` (``backbone.``,
        ``decode_head.``).

    Raises:
        KeyError: For keys outside ``backbone.`` and ``classifier.`` or of unknown layout.
    """
    backbone, classifier = {}, {}
    for key, value in state_dict.items():
        prefix, _, rest = key.partition('.')
        if prefix == 'backbone':
            backbone[rest] = value
        elif prefix == 'classifier':
            classifier[rest] = value
        else:
            raise KeyError(f'{key!r}: an official LAVT model has only backbone.* and '
                           'classifier.* keys')
    converted = OrderedDict(
        (f'backbone.{k}', v) for k, v in convert_swin_official(backbone).items())
    num_levels = 1 + len({k.split('.')[0][-1] for k in classifier if k.startswith('conv2_')})
    for key, value in classifier.items():
        converted[f'decode_head.{_decoder_key(key, num_levels)}'] = value
    return converted


def _args_get(args: Any, name: str, default: Any) -> Any:
    """``args.name`` of a checkpoint's argparse namespace (or dict), else ``default``."""
    if isinstance(args, dict):
        return args.get(name, default)
    return getattr(args, name, default)


def infer_lavt_arch(state_dict: Dict[str, Tensor], args: Any = None) -> Dict[str, dict]:
    """Backbone and decode-head configs of an official LAVT ``model``, from tensor shapes.

    The shapes give the patch size, embedding width, depths, heads (columns of the relative
    position tables), window (rows of the tables), MLP ratio, text width, output stages and
    the decoder width. PWAM heads and dropouts leave no trace in the shapes: they come from
    the checkpoint's ``args`` when present (LAVT's ``--mha '4-4-4-4'``, ``--fusion_drop``),
    else the published defaults (1 head, no dropout).

    Args:
        state_dict (dict[str, Tensor]): The official ``model`` state dict.
        args (Any): The checkpoint's ``args`` (argparse namespace or dict). Defaults to None.

    Returns:
        dict[str, dict]: ``backbone`` (``LAVTSwinTransformer``) and ``decode_head``
        (``SimpleDecodingHead``) configs.

    Raises:
        KeyError: When a weight the inference needs is missing.
    """
    def get(key: str) -> Tensor:
        if key not in state_dict:
            raise KeyError(f'the official LAVT checkpoint lacks {key!r}, needed to infer '
                           'the architecture')
        return state_dict[key]

    proj = get('backbone.patch_embed.proj.weight')
    embed_dims = proj.shape[0]
    depths, num_heads, windows = [], [], set()
    while f'backbone.layers.{len(depths)}.blocks.0.norm1.weight' in state_dict:
        stage = len(depths)
        depth = 0
        while f'backbone.layers.{stage}.blocks.{depth}.norm1.weight' in state_dict:
            table = get(f'backbone.layers.{stage}.blocks.{depth}.attn.'
                        'relative_position_bias_table')
            windows.add((int(round(table.shape[0]**0.5)) + 1) // 2)
            depth += 1
        depths.append(depth)
        num_heads.append(table.shape[1])
    if len(windows) != 1:
        raise ValueError(f'the checkpoint mixes window sizes {sorted(windows)}')
    num_stages = len(depths)
    mha = _args_get(args, 'mha', '')
    fusion_heads = [int(h) for h in mha.split('-')] if mha else [1] * num_stages
    fc1 = get('backbone.layers.0.blocks.0.mlp.fc1.weight')
    backbone = dict(
        type='LAVTSwinTransformer',
        in_channels=proj.shape[1],
        embed_dims=embed_dims,
        patch_size=proj.shape[-1],
        window_size=windows.pop(),
        mlp_ratio=fc1.shape[0] / embed_dims,
        depths=depths,
        num_heads=num_heads,
        fusion_heads=fusion_heads,
        text_dims=get('backbone.layers.0.fusion.image_lang_att.f_key.0.weight').shape[1],
        qkv_bias='backbone.layers.0.blocks.0.attn.qkv.bias' in state_dict,
        # LAVT hard-codes 0.3 (not in args); it only matters for training.
        drop_path_rate=0.3,
        fusion_drop=float(_args_get(args, 'fusion_drop', 0.0)),
        patch_norm='backbone.patch_embed.norm.weight' in state_dict,
        out_indices=[i for i in range(num_stages) if f'backbone.norm{i}.weight' in state_dict])
    in_channels = [embed_dims * 2**i for i in backbone['out_indices']]
    decode_head = dict(
        type='SimpleDecodingHead',
        in_channels=in_channels,
        channels=get(f'classifier.conv1_{len(in_channels)}.weight').shape[0],
        num_classes=get('classifier.conv1_1.weight').shape[0],
        in_index=list(range(len(in_channels))),
        align_corners=True)
    return dict(backbone=backbone, decode_head=decode_head)


def convert_hf_bert(state_dict: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Hugging Face BERT weights -> the names of a ``BertModel`` without pooler.

    Accepts the files of ``BertModel`` (``embeddings.*``) and of the pre-training heads
    models such as the hub's ``bert-base-uncased`` (``bert.embeddings.*``, ``cls.*``, old
    ``gamma``/``beta`` LayerNorm names). Drops the heads, the pooler and the position-id
    buffers (recomputed by ``transformers``).

    Args:
        state_dict (dict[str, Tensor]): The weights of a Hugging Face BERT file.

    Returns:
        OrderedDict[str, Tensor]: ``embeddings.*`` and ``encoder.*`` weights.
    """
    converted = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('bert.'):
            key = key[len('bert.'):]
        if not key.startswith(('embeddings.', 'encoder.')) or key.endswith(
                ('position_ids', 'token_type_ids')):
            continue
        key = re.sub(r'LayerNorm\.gamma$', 'LayerNorm.weight', key)
        key = re.sub(r'LayerNorm\.beta$', 'LayerNorm.bias', key)
        converted[key] = value
    return converted


def load_hf_bert_folder(folder: str) -> 'OrderedDict[str, Tensor]':
    """Read the weights of a local Hugging Face BERT folder (no hub access).

    Args:
        folder (str): A folder with ``model.safetensors`` or ``pytorch_model.bin``, e.g.
            ``bert-base-uncased`` downloaded elsewhere and copied here.

    Returns:
        OrderedDict[str, Tensor]: :func:`convert_hf_bert` of its weights.

    Raises:
        FileNotFoundError: When the folder has neither weights file.
    """
    safetensors_file = osp.join(folder, 'model.safetensors')
    bin_file = osp.join(folder, 'pytorch_model.bin')
    if osp.isfile(safetensors_file):
        from safetensors.torch import load_file
        weights = load_file(safetensors_file)
    elif osp.isfile(bin_file):
        weights = load_weights_only(bin_file)
    else:
        raise FileNotFoundError(
            f'{folder} has no model.safetensors or pytorch_model.bin: give a local Hugging '
            'Face BERT folder, e.g. bert-base-uncased downloaded on a machine with internet '
            'access (`huggingface-cli download bert-base-uncased --local-dir DIR`).')
    converted = convert_hf_bert(weights)
    if not converted:
        raise KeyError(f'{folder}: no BERT weights (embeddings.*, encoder.*) in its file')
    return converted


def infer_bert_config(bert_state: Dict[str, Tensor]) -> dict:
    """A ``transformers`` BERT config (``model_type='bert'``) matching the weights' shapes.

    The number of attention heads leaves no trace in the shapes: it is taken as
    ``hidden // 64``, BERT's convention (12 for bert-base).

    Args:
        bert_state (dict[str, Tensor]): Output of :func:`convert_hf_bert`.

    Returns:
        dict: Keyword arguments for ``HFTextEncoder(hf_config=...)``.
    """
    vocab_size, hidden = bert_state['embeddings.word_embeddings.weight'].shape
    layers = {int(k.split('.')[2]) for k in bert_state if k.startswith('encoder.layer.')}
    return dict(
        model_type='bert',
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=len(layers),
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=bert_state['encoder.layer.0.intermediate.dense.weight'].shape[0],
        max_position_embeddings=bert_state['embeddings.position_embeddings.weight'].shape[0],
        type_vocab_size=bert_state['embeddings.token_type_embeddings.weight'].shape[0])


def convert_risfusion_official(checkpoint: dict, bert_folder: Optional[str] = None
                               ) -> Tuple['OrderedDict[str, Tensor]', Dict[str, dict]]:
    """A whole official RIS-FUSION checkpoint -> ``RISFusion`` weights and module configs.

    ``model`` (LAVT) -> ``backbone.*`` / ``decode_head.*`` (:func:`convert_lavt_official`);
    ``prefusion_model`` -> ``fuser.*`` (:func:`convert_official_fuser`,
    :func:`official_fuser_config`); BERT ->
    ``text_encoder.model.*``: the checkpoint's own ``bert_model`` when it has one (LAVT's
    layout), else the weights of ``bert_folder``. The published best checkpoint omits the
    trained BERT (a bug of the published code), so without ``bert_folder`` the weights have
    no text encoder and the config builds a randomly initialised bert-base.

    Args:
        checkpoint (dict): The loaded official checkpoint (``model``, ``prefusion_model``,
            optional ``bert_model``, ``args``).
        bert_folder (str, optional): A local Hugging Face BERT folder, recorded as the text
            encoder's ``model_path``. Defaults to None.

    Returns:
        tuple: The state dict in ``RISFusion`` names, and the configs of its
        ``text_encoder``, ``fuser``, ``backbone`` and ``decode_head``.

    Raises:
        KeyError: When ``model`` or ``prefusion_model`` is missing.
    """
    missing = [k for k in ('model', 'prefusion_model') if k not in checkpoint]
    if missing:
        raise KeyError(f'not an official RIS-FUSION checkpoint: no {missing} (keys found: '
                       f'{sorted(checkpoint)})')
    args = checkpoint.get('args')
    configs = infer_lavt_arch(checkpoint['model'], args)
    configs['fuser'] = official_fuser_config(checkpoint['prefusion_model'])
    state_dict = convert_lavt_official(checkpoint['model'])
    fuser_state = convert_official_fuser(checkpoint['prefusion_model'])
    state_dict.update((f'fuser.{k}', v) for k, v in fuser_state.items())
    bert_state = None
    if 'bert_model' in checkpoint:
        bert_state = convert_hf_bert(checkpoint['bert_model'])
    elif bert_folder is not None:
        bert_state = load_hf_bert_folder(bert_folder)
    if bert_folder is not None:
        configs['text_encoder'] = dict(type='HFTextEncoder', model_path=bert_folder)
    else:
        configs['text_encoder'] = dict(
            type='HFTextEncoder',
            hf_config=infer_bert_config(bert_state) if bert_state else dict(BERT_BASE_CONFIG))
    if bert_state is not None:
        state_dict.update((f'text_encoder.model.{k}', v) for k, v in bert_state.items())
    return state_dict, configs


# --------------------------------------------------------------------------------------------
# LDFusion: the published encoder / decoder state dicts -> :class:`LDFusionNet`
# (docs/ldfusion.md#published-checkpoints).
# --------------------------------------------------------------------------------------------

#: Dummy AdaIN buffers of the published decoder (zeros and ones, never read): not converted.
_LDFUSION_UNUSED = re.compile(r'model_local\.\d+\.block\.\d+\.running_(mean|var)$')


def _numbered(state_dict: Dict[str, Tensor], prefix: str) -> Dict[int, str]:
    """``{N: key}`` of the ``<prefix>.N.weight`` keys (direct children of a Sequential)."""
    pattern = re.compile(re.escape(prefix) + r'\.(\d+)\.weight$')
    return {int(m.group(1)): key for key in state_dict
            if (m := pattern.match(key)) is not None}


def _ldfusion_names(num_down: int, num_res: int) -> Dict[str, str]:
    """Published module prefixes -> ours (weights and biases keep their leaf names).

    The published layout (``nn.Sequential`` indices): content encoder ``model.1`` (7x7),
    ``model.4, 7, ...`` (stride 2), then residual blocks (``block.1``, ``block.5``); style
    encoder ``model.1`` (7x7), ``model.3, 5, ...`` (stride 2), the 1x1 output after the pooling;
    decoder ``model_local.R.block.{1,5}`` (AdaIN blocks), ``model_up.3k`` (transposed convs),
    ``model_up.3k+1`` (layer norms), the 7x7 output conv, ``mlp.model.{0,2,4}``.
    """
    names = {}
    for index, ours in ((1, 'vis_encoder'), (2, 'ir_encoder')):
        theirs = f'content_encoder{index}.model'
        names[f'{theirs}.1'] = f'{ours}.content.0.conv'
        for k in range(num_down):
            names[f'{theirs}.{4 + 3 * k}'] = f'{ours}.content.{1 + k}.conv'
        for r in range(num_res):
            block = f'{theirs}.{1 + 3 * (num_down + 1) + r}.block'
            names[f'{block}.1'] = f'{ours}.content.{1 + num_down + r}.block.0.conv'
            names[f'{block}.5'] = f'{ours}.content.{1 + num_down + r}.block.1.conv'
        theirs = f'style_encoder{index}.model'
        names[f'{theirs}.1'] = f'{ours}.style.0.conv'
        for k in range(num_down):
            names[f'{theirs}.{3 + 2 * k}'] = f'{ours}.style.{1 + k}.conv'
        names[f'{theirs}.{4 + 2 * num_down}'] = f'{ours}.style.{num_down + 2}'
    for r in range(num_res):
        names[f'model_local.{r}.block.1'] = f'adain_blocks.{r}.conv1.conv'
        names[f'model_local.{r}.block.5'] = f'adain_blocks.{r}.conv2.conv'
    for k in range(num_down):
        names[f'model_up.{3 * k}'] = f'upsample.{3 * k}'
        names[f'model_up.{3 * k + 1}'] = f'upsample.{3 * k + 1}'
    names[f'model_up.{3 * num_down + 1}'] = 'head.conv'
    for number in (0, 2, 4):
        names[f'mlp.model.{number}'] = f'mlp.{number}'
    return names


def ldfusion_official_config(enc: Dict[str, Tensor], dec: Dict[str, Tensor]) -> dict:
    """The :class:`LDFusionNet` config of the published state dicts, read from the shapes.

    Args:
        enc (dict[str, Tensor]): The published ``Encoder`` state dict.
        dec (dict[str, Tensor]): The published ``Decoder`` state dict.

    Returns:
        dict: ``dict(type='LDFusionNet', base_channels=..., num_downsample=..., num_res=...,
        style_channels=..., style_dim=..., mlp_channels=...)``.
    """
    content = _numbered(enc, 'content_encoder1.model')
    style = sorted(_numbered(enc, 'style_encoder1.model'))
    if 1 not in content or len(style) < 3:
        raise KeyError('not a published LDFusion encoder state dict: expected '
                       "'content_encoder1.model.1.weight' and style_encoder1 convolutions, "
                       f'got keys like {sorted(enc)[:4]}')
    num_down = len(content) - 1
    if len(style) != num_down + 2:
        raise ValueError(f'the published style encoder has {len(style) - 2} stride-2 '
                         f'convolutions and the content encoder {num_down}; LDFusionNet '
                         'needs as many in both')
    base = enc['content_encoder1.model.1.weight']
    if base.shape[1] != 1:
        raise ValueError(f'LDFusionNet encodes single-channel images; the published encoder '
                         f'takes {base.shape[1]} channels')
    mlp = sorted(_numbered(dec, 'mlp.model'))
    if mlp != [0, 2, 4]:
        raise KeyError(f'expected the published 3-layer MLP mlp.model.{{0,2,4}}, got layers '
                       f'{mlp}')
    return dict(type='LDFusionNet', base_channels=int(base.shape[0]), num_downsample=num_down,
                num_res=len({key.split('.')[2] for key in enc
                             if key.startswith('content_encoder1.') and '.block.' in key}),
                style_channels=max(int(enc[f'style_encoder1.model.{n}.weight'].shape[0])
                                   for n in style[1:-1]),
                style_dim=int(enc[f'style_encoder1.model.{style[-1]}.weight'].shape[0]),
                mlp_channels=int(dec['mlp.model.0.weight'].shape[0]))


def _unwrap_module(state_dict: Dict[str, Tensor], what: str) -> Dict[str, Tensor]:
    """Check a bare state dict of tensors and drop a DDP ``module.`` prefix."""
    if not isinstance(state_dict, dict) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise TypeError(f'the published LDFusion {what} must be a state dict of tensors, got '
                        f'{type(state_dict).__name__}')
    if state_dict and all(key.startswith('module.') for key in state_dict):
        return {key[len('module.'):]: value for key, value in state_dict.items()}
    return state_dict


def convert_ldfusion_official(enc: Dict[str, Tensor], dec: Dict[str, Tensor]
                              ) -> Tuple['OrderedDict[str, Tensor]', dict]:
    """The published LDFusion encoder and decoder state dicts -> :class:`LDFusionNet`.

    The published trainer saves ``Enc.state_dict()`` and ``Dec.state_dict()`` as two files
    (``Enc_final.pt``, ``Dec_final.pt``); the architecture is read from the tensor shapes.
    Every published tensor is used except the decoder's dummy AdaIN buffers.

    Args:
        enc (dict[str, Tensor]): The published ``Encoder`` state dict.
        dec (dict[str, Tensor]): The published ``Decoder`` state dict.

    Returns:
        tuple: The state dict in :class:`LDFusionNet`'s names (load it strictly into
        ``LDFusionNet(**config)``), and that config (``type='LDFusionNet'`` included).

    Raises:
        KeyError: When a tensor of either file has no place in the network.
    """
    enc = _unwrap_module(enc, 'encoder')
    dec = _unwrap_module(dec, 'decoder')
    cfg = ldfusion_official_config(enc, dec)
    names = _ldfusion_names(cfg['num_downsample'], cfg['num_res'])
    out = OrderedDict()
    unused = []
    for key, value in [*enc.items(), *dec.items()]:
        module, _, leaf = key.rpartition('.')
        if module in names:
            out[f'{names[module]}.{leaf}'] = value
        elif not _LDFUSION_UNUSED.match(key):
            unused.append(key)
    if unused:
        raise KeyError(f'the published LDFusion state dicts have tensors with no place in '
                       f'LDFusionNet: {unused[:5]}')
    return out, cfg


def to_ldfusion_official(state_dict: Dict[str, Tensor], num_downsample: int = 3,
                         num_res: int = 2) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    """:class:`LDFusionNet` weights -> the published ``Enc`` and ``Dec`` state dicts.

    The inverse of :func:`convert_ldfusion_official`, dummy AdaIN buffers included, so that the
    published test script loads (strictly) a network trained here.

    Args:
        state_dict (dict[str, Tensor]): ``LDFusionNet.state_dict()`` (a ``fuser.`` prefix,
            as in a ``FusionModel`` checkpoint, is removed).
        num_downsample (int): The network's ``num_downsample``. Defaults to 3.
        num_res (int): The network's ``num_res``. Defaults to 2.

    Returns:
        tuple[dict, dict]: The encoder and decoder state dicts, published names.
    """
    state_dict = {key.removeprefix('fuser.'): value for key, value in state_dict.items()}
    ours = {value: key for key, value in _ldfusion_names(num_downsample, num_res).items()}
    enc, dec = OrderedDict(), OrderedDict()
    for key, value in state_dict.items():
        module, _, leaf = key.rpartition('.')
        if module not in ours:
            raise KeyError(f'{key} is not an LDFusionNet tensor of num_downsample='
                           f'{num_downsample}, num_res={num_res}')
        theirs = f'{ours[module]}.{leaf}'
        (enc if theirs.startswith(('content_', 'style_')) else dec)[theirs] = value
    channels = state_dict['adain_blocks.0.conv1.conv.weight'].shape[0]
    for r in range(num_res):
        for norm in (2, 6):
            dec[f'model_local.{r}.block.{norm}.running_mean'] = torch.zeros(channels)
            dec[f'model_local.{r}.block.{norm}.running_var'] = torch.ones(channels)
    return enc, dec


# --------------------------------------------------------------------------------------------
# LAVT's own checkpoints (yz93/LAVT-RIS), the initialisation of the published RIS-FUSION run.
# --------------------------------------------------------------------------------------------

#: LAVT's two models: ``lavt_one`` keeps BERT inside the model (``model['text_encoder.*']``),
#: ``lavt`` beside it (``checkpoint['bert_model']``); both without BERT's pooler.
LAVT_LAYOUTS = ('lavt_one', 'lavt')
_LAVT_TEXT_PREFIX = 'text_encoder.'


def split_lavt_checkpoint(checkpoint: dict) -> Tuple[str, Dict[str, Tensor], Dict[str, Tensor]]:
    """Tell the LAVT layout of a checkpoint and separate its segmentation network from BERT.

    Args:
        checkpoint (dict): A loaded LAVT checkpoint.

    Returns:
        tuple: The layout (``'lavt_one'`` or ``'lavt'``), the ``backbone.*`` /
        ``classifier.*`` state dict, and BERT's state dict (Hugging Face ``BertModel``
        names).

    Raises:
        KeyError: Without ``model``, or without BERT in either place.
        ValueError: With BERT in both places.
    """
    if not isinstance(checkpoint, dict) or 'model' not in checkpoint:
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise KeyError(f"not a LAVT checkpoint: no 'model' (found {found})")
    model, inner_bert = OrderedDict(), OrderedDict()
    for key, value in checkpoint['model'].items():
        if key.startswith(_LAVT_TEXT_PREFIX):
            inner_bert[key[len(_LAVT_TEXT_PREFIX):]] = value
        else:
            model[key] = value
    if inner_bert and 'bert_model' in checkpoint:
        raise ValueError("a LAVT checkpoint has BERT either in model['text_encoder.*'] "
                         "(lavt_one) or in 'bert_model' (lavt), this one has both")
    if inner_bert:
        return 'lavt_one', model, inner_bert
    if 'bert_model' in checkpoint:
        return 'lavt', model, OrderedDict(checkpoint['bert_model'])
    raise KeyError("no BERT weights: a LAVT checkpoint has them in model['text_encoder.*'] "
                   "(lavt_one) or in 'bert_model' (lavt). A RIS-FUSION checkpoint "
                   "('prefusion_model') is converted by tools/model_converters/"
                   'risfusion_official.py')


def convert_lavt_checkpoint(checkpoint: dict
                            ) -> Tuple['OrderedDict[str, Tensor]', Dict[str, dict], str]:
    """A LAVT checkpoint (either layout) -> the ``RISFusion`` weights it initialises.

    ``backbone.*`` and ``classifier.*`` become ``backbone.*`` and ``decode_head.*``
    (:func:`convert_lavt_official`, the architecture from the shapes and ``args`` by
    :func:`infer_lavt_arch`); BERT becomes ``text_encoder.model.*``
    (:func:`convert_hf_bert`). The fuser is not part of LAVT and keeps its initialisation.
    The optimizer, scheduler and epoch are dropped: training starts anew.

    Args:
        checkpoint (dict): A loaded LAVT checkpoint.

    Returns:
        tuple: The state dict in ``RISFusion`` names; the configs of ``backbone``,
        ``decode_head`` and ``text_encoder`` (``HFTextEncoder`` with the BERT config of the
        weights); the layout.
    """
    layout, model, bert = split_lavt_checkpoint(checkpoint)
    configs = infer_lavt_arch(model, checkpoint.get('args'))
    state_dict = convert_lavt_official(model)
    bert_state = convert_hf_bert(bert)
    state_dict.update((f'text_encoder.model.{k}', v) for k, v in bert_state.items())
    configs['text_encoder'] = dict(type='HFTextEncoder', hf_config=infer_bert_config(bert_state))
    return state_dict, configs, layout
