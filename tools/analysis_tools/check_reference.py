"""Check that our implementation reproduces outputs saved from the published code.

Two methods, chosen with ``--method``:

``risfusion`` (default): a converted official RIS-FUSION checkpoint against an IO file.
Example, with ``REFERENCE`` a folder of reference files made by running the published code::

    python tools/analysis_tools/check_reference.py \
        REFERENCE/risfusion/official_tiny.pth REFERENCE/risfusion/io_tiny.pt

The official checkpoint is converted (``convert_risfusion_official``), a ``RISFusion`` is
built from the inferred architecture, and the IO file's inputs (``vis``, ``ir``,
``text_feats`` (B, T, 768), ``text_mask``; the text encoder is bypassed, as the published
outputs were computed from given word features) go through it in eval mode. Printed: the
maximum absolute difference of ``fused``, ``logits``, each of ``backbone_outs``,
``dice_loss`` and the fusion loss before (``fusion_loss_raw``) and after
(``fusion_loss_weighted``) lambda, with the published weights (docs/risfusion.md#fusion-loss),
next to each output's float32 rounding noise (our float32 run against our float64 run). The
exit status is 1 when a difference exceeds ``--tolerance`` (1e-4) plus twice that noise, or
``--tolerance`` alone with ``--strict``.

Why the noise term: LAVT's instance norms cancel most digits of channels whose spatial
spread is tiny next to their mean, so float32 rounding is amplified about 1e4 times in the
backbone maps (about 1e-3 on the tiny reference). The published numbers depend on the thread
count: on a 2-core CPU with 2 threads our outputs equal the published tiny reference bit for
bit (and ``--strict`` passes), with 1 thread the backbone maps differ by up to 1.2e-3. A
wrong implementation differs by orders of magnitude more.
The decoder output (``logits``), the fused image and the losses are well conditioned and
are held to the tolerance itself.

Any checkpoint and IO file of that layout work, whatever the sizes, batch or image shape.

``ldfusion``: a folder laid out as the LDFusion reference::

    python tools/analysis_tools/check_reference.py --method ldfusion REFERENCE/ldfusion

holding ``official_net.pth`` (the published ``{'Enc', 'Dec'}`` state dicts),
``clip_tiny_openai.pt`` (a CLIP in OpenAI's layout), ``vgg19_features.pt`` (VGG19
``features.N`` tensors) and ``io.pt`` (inputs, outputs, the patch-crop parameters, loss terms
and gradients of one published training step and one published inference; its ``meta.json``
says what each entry is). Our components are built from those files (``LDFusionNet`` from the
converted weights, ``CLIPLanguageLoss`` on an ``OpenCLIPEncoder``, ``PerceptualMaxLoss``, a
``FusionModel`` for the colour output), run in float32 on the recorded inputs, with the
recorded patch crops, and every output is compared (docs/ldfusion.md). The exit status is 1
when a difference exceeds ``--tolerance`` (1e-5); gradients are held to it relative to their
largest reference value, the keep mask of the entropy filter must match exactly, and the 8-bit
colour output may differ by one level (the published test script recomposes the colour with
OpenCV's float YCrCb constants, we with the JFIF ones: the two differ by up to 3.4e-4, which
moves the truncation to 8 bits in a few pixels). With ``--images IVIF_DIR`` (holding the
images ``meta.json`` names) the training crops are also rebuilt from the image files and the
recorded crop parameters, and must equal the published ones exactly.
"""
import argparse
import copy
import json
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.registry import init_default_scope
from torch import Tensor

from mmrisfusion.models.utils.ckpt_convert import convert_risfusion_official
from mmrisfusion.utils.checkpoint import load_weights_only

#: The published fusion terms and weights (RIS-FUSION README): lambda 3.0, ssim_vis 0.5,
#: mse_vis 0.5, mse_ir 2.0, sobel_ir 1.0, grad 1.0, the others 0.
PUBLISHED_FUSION_LOSSES = [
    dict(type='SSIMLoss', source='vis', loss_weight=0.5),
    dict(type='LumaMSELoss', source='vis', loss_weight=0.5),
    dict(type='LumaMSELoss', source='ir', loss_weight=2.0),
    dict(type='SobelL1Loss', source='ir', loss_weight=1.0),
    dict(type='JointGradientLoss', loss_weight=1.0),
]
PUBLISHED_LAMBDA = 3.0
#: An output may differ by the tolerance plus this many times its float32 rounding noise:
#: our float32 result and the published one each carry about that noise.
NOISE_FACTOR = 2.0
#: The published segmentation loss.
PUBLISHED_SEG_LOSS = dict(type='TwoClassDiceLoss')
IO_KEYS = ('vis', 'ir', 'text_feats', 'text_mask', 'target', 'fused', 'logits',
           'backbone_outs', 'dice_loss', 'fusion_loss_raw', 'fusion_loss_weighted')


def _stand_in_text_encoder(text_dims: int) -> dict:
    """A tiny text encoder: the check feeds word features directly, so it never runs."""
    return dict(type='HFTextEncoder', out_channels=text_dims,
                hf_config=dict(model_type='bert', vocab_size=8, hidden_size=8,
                               num_hidden_layers=1, num_attention_heads=1,
                               intermediate_size=8, max_position_embeddings=8))


def build_reference_model(checkpoint: dict) -> torch.nn.Module:
    """Convert an official checkpoint and build the ``RISFusion`` that holds its weights.

    Args:
        checkpoint (dict): The loaded official checkpoint.

    Returns:
        nn.Module: The model in eval mode, with the published fusion losses.

    Raises:
        RuntimeError: When the converted weights do not fill the model built from the
            inferred architecture (every weight but the bypassed text encoder's).
    """
    from mmrisfusion.registry import MODELS
    state_dict, parts = convert_risfusion_official(checkpoint)
    parts['text_encoder'] = _stand_in_text_encoder(parts['backbone']['text_dims'])
    model = MODELS.build(
        dict(type='RISFusion', **parts, fusion_losses=PUBLISHED_FUSION_LOSSES,
             fusion_loss_weight=PUBLISHED_LAMBDA))
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith('text_encoder.')]
    if missing or result.unexpected_keys:
        raise RuntimeError(f'the converted weights do not fill the model: missing {missing[:5]}, '
                           f'unexpected {result.unexpected_keys[:5]}')
    return model.eval()


def _load_io(path: str) -> dict:
    """Read the IO file and check it has every entry the comparison needs."""
    io = load_weights_only(path)
    missing = [k for k in IO_KEYS if k not in io]
    if missing:
        raise KeyError(f'{path} lacks {missing}; an IO file has {list(IO_KEYS)}')
    return io


def _max_abs_diff(name: str, ours: Tensor, theirs: Tensor) -> float:
    """Maximum absolute difference, with a clear error on a shape mismatch."""
    if ours.shape != theirs.shape:
        raise ValueError(f'{name}: our output has shape {tuple(ours.shape)}, the reference '
                         f'{tuple(theirs.shape)}')
    return (ours.double() - theirs.double()).abs().max().item()


def model_outputs(model: torch.nn.Module, io: dict, dtype: torch.dtype) -> Dict[str, Tensor]:
    """Every compared output of ``model`` on the IO inputs, computed in ``dtype``.

    Args:
        model (nn.Module): From :func:`build_reference_model`, cast to ``dtype``.
        io (dict): The IO file's contents (its inputs are used).
        dtype (torch.dtype): The precision of the run.

    Returns:
        dict[str, Tensor]: ``fused``, ``logits``, ``backbone_outs[i]``, ``dice_loss``,
        ``fusion_loss_raw`` and ``fusion_loss_weighted``.
    """
    from mmrisfusion.registry import MODELS
    vis, ir, text_feats = (io[k].to(dtype) for k in ('vis', 'ir', 'text_feats'))
    fused, feats, logits = model.forward_with_text_feats(vis, ir, text_feats, io['text_mask'])
    if len(feats) != len(io['backbone_outs']):
        raise ValueError(f'the backbone gives {len(feats)} maps, the reference '
                         f'{len(io["backbone_outs"])}')
    weighted = sum(model.loss_fusion(fused, vis, ir).values())
    outputs = dict(fused=fused, logits=logits)
    outputs.update((f'backbone_outs[{i}]', feat) for i, feat in enumerate(feats))
    outputs['dice_loss'] = MODELS.build(PUBLISHED_SEG_LOSS)(logits, io['target'])
    outputs['fusion_loss_raw'] = weighted / PUBLISHED_LAMBDA
    outputs['fusion_loss_weighted'] = weighted
    return outputs


def _reference(io: dict, name: str) -> Tensor:
    """The IO file's value of an output name (``backbone_outs[i]`` indexes the list)."""
    if name.startswith('backbone_outs['):
        return io['backbone_outs'][int(name[len('backbone_outs['):-1])]
    return io[name]


@torch.no_grad()
def compare(model: torch.nn.Module, io: dict) -> List[Tuple[str, float, float]]:
    """Run the model on the IO inputs and measure every difference to the IO outputs.

    Besides the difference, the float32 rounding noise of each output is measured as the
    difference between the model run in float32 and in float64: LAVT's instance norms
    subtract per-channel means from values whose spread is far smaller than the mean, so
    the backbone maps amplify rounding (a 1e-7 relative change of the input image moves
    them by about 1e-3, as does running the published code with another thread count).
    The published outputs carry that same noise.

    Args:
        model (nn.Module): From :func:`build_reference_model`.
        io (dict): The IO file's contents.

    Returns:
        list[tuple[str, float, float]]: ``(output name, max abs difference to the
        reference, max abs float32 rounding noise)``.
    """
    ours = model_outputs(model, io, torch.float32)
    diffs = {name: _max_abs_diff(name, value, _reference(io, name))
             for name, value in ours.items()}
    exact = model_outputs(copy.deepcopy(model).double(), io, torch.float64)
    return [(name, diffs[name], _max_abs_diff(name, value, exact[name]))
            for name, value in ours.items()]


# --------------------------------------------------------------------------------------------
# LDFusion
# --------------------------------------------------------------------------------------------

#: The files of an LDFusion reference folder.
LDFUSION_FILES = dict(net='official_net.pth', clip='clip_tiny_openai.pt',
                      vgg='vgg19_features.pt', io='io.pt')
#: The published loss weights (docs/ldfusion.md#total-loss).
LDFUSION_WEIGHTS = dict(sim=6.0, dir_global=2.0, dir_patch=10.0, vgg=10.0)
#: The published VGG layers' labels, in the order of ``PerceptualMaxLoss.features``.
LDFUSION_VGG_LABELS = ('conv2_1', 'conv3_1', 'conv4_2')
#: The inputs every comparison reads from ``io.pt``.
LDFUSION_INPUTS = ('vis_rgb_u8', 'ir_u8', 'vis_in', 'ir_in', 'fused', 'patch_size',
                   'patch_crop_ij', 'patch_affine_angle', 'patch_affine_translate',
                   'patch_affine_scale', 'patch_affine_shear', 'infer_vis_rgb_u8',
                   'infer_ir_u8')
#: Outputs compared exactly (a boolean mask) and 8-bit outputs (one level allowed).
LDFUSION_EXACT = ('patch_keep', )
LDFUSION_UINT8 = ('infer_fused_rgb_u8', )
#: CLIP image features: the reference stores them unnormalised, we compare directions.
LDFUSION_NORMALISED = ('clip_img_vis', 'clip_img_ir', 'clip_img_fused', 'clip_img_patches')


def build_ldfusion(folder: str) -> Dict[str, torch.nn.Module]:
    """Our LDFusion components from the files of a reference folder.

    Args:
        folder (str): The folder (``LDFUSION_FILES`` but ``io.pt``).

    Returns:
        dict[str, nn.Module]: ``model``, a ``FusionModel`` (eval mode) whose ``fuser`` is the
        ``LDFusionNet`` holding the converted published weights and whose losses are the
        published ``CLIPLanguageLoss`` (``return_terms=True``) and ``PerceptualMaxLoss``;
        ``clip_loss`` and ``vgg_loss``, those two terms.
    """
    from mmrisfusion.models.utils import convert_ldfusion_official
    from mmrisfusion.registry import MODELS
    paths = {key: osp.join(folder, name) for key, name in LDFUSION_FILES.items()
             if key != 'io'}
    missing = [path for path in paths.values() if not osp.isfile(path)]
    if missing:
        raise FileNotFoundError(f'{folder} is not an LDFusion reference folder: {missing} '
                                f'missing (expected {sorted(LDFUSION_FILES.values())})')
    published = load_weights_only(paths['net'])
    if not isinstance(published, dict) or not {'Enc', 'Dec'} <= set(published):
        raise KeyError(f"{paths['net']} must hold {{'Enc': ..., 'Dec': ...}}")
    state_dict, fuser = convert_ldfusion_official(published['Enc'], published['Dec'])
    model = MODELS.build(dict(
        type='FusionModel', fuser=fuser,
        losses=[dict(type='CLIPLanguageLoss',
                     clip=dict(type='OpenCLIPEncoder', checkpoint=paths['clip']),
                     sim_weight=LDFUSION_WEIGHTS['sim'],
                     global_weight=LDFUSION_WEIGHTS['dir_global'],
                     patch_weight=LDFUSION_WEIGHTS['dir_patch'], return_terms=True),
                dict(type='PerceptualMaxLoss', checkpoint=paths['vgg'],
                     loss_weight=LDFUSION_WEIGHTS['vgg'])]))
    model.fuser.load_state_dict(state_dict, strict=True)
    clip_loss, vgg_loss = model.losses
    return dict(model=model.eval(), clip_loss=clip_loss, vgg_loss=vgg_loss)


def _load_ldfusion_io(path: str) -> dict:
    """Read ``io.pt`` and check it has the inputs the comparison needs."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist: an LDFusion reference folder holds '
                                f'{sorted(LDFUSION_FILES.values())}')
    io = load_weights_only(path)
    missing = [k for k in LDFUSION_INPUTS if k not in io]
    if missing:
        raise KeyError(f'{path} lacks {missing}; see the meta.json of the reference folder')
    return io


def ldfusion_patch_crops(io: dict):
    """The recorded patch crops of the published step as :class:`AffineCrops`."""
    from mmrisfusion.models.utils import AffineCrops
    return AffineCrops(int(io['patch_size']), io['patch_crop_ij'][:, 0],
                       io['patch_crop_ij'][:, 1], io['patch_affine_angle'],
                       io['patch_affine_translate'], io['patch_affine_scale'],
                       io['patch_affine_shear'])


def _fusion_inputs(vis_rgb_u8: Tensor, ir_u8: Tensor) -> dict:
    """8-bit VIS RGB and IR as the data preprocessor hands them over (ImageNet-normalised,
    IR repeated to three channels)."""
    from mmrisfusion.models.utils import IMAGENET_MEAN_255, IMAGENET_STD_255, normalize
    mean, std = torch.tensor(IMAGENET_MEAN_255), torch.tensor(IMAGENET_STD_255)
    return dict(vis=normalize(vis_rgb_u8.float(), mean, std),
                ir=normalize(ir_u8.float().expand(-1, 3, -1, -1), mean, std))


def ldfusion_network_outputs(fuser: torch.nn.Module, io: dict) -> Dict[str, Tensor]:
    """The network's outputs on the recorded inputs: style codes, the decoder output before
    and after the crop, for the training batch and the inference window.

    Args:
        fuser (nn.Module): The ``LDFusionNet``, in the precision of the run.
        io (dict): The ``io.pt`` contents.

    Returns:
        dict[str, Tensor]: ``style_vis``, ``style_ir``, ``fused_full``, ``fused``,
        ``infer_fused_full``, ``infer_fused``.
    """
    dtype = next(fuser.parameters()).dtype
    out = {}
    for prefix, vis, ir in (('', io['vis_in'], io['ir_in']),
                            ('infer_', io['infer_vis_y'], io['infer_ir'])):
        vis, ir = vis.to(dtype), ir.to(dtype)
        content, style = fuser.encode(vis, ir)
        if not prefix:
            out['style_vis'], out['style_ir'] = (code[..., None, None]
                                                 for code in style.chunk(2, dim=1))
        out[f'{prefix}fused_full'] = fuser.decode(content, style)
        out[f'{prefix}fused'] = fuser(vis, ir)
    return out


def ldfusion_outputs(parts: Dict[str, torch.nn.Module], io: dict) -> Dict[str, Tensor]:
    """Our value of every compared ``io.pt`` entry, under its name.

    The network runs on the recorded inputs (the noisy training inputs, the inference
    window's luma); the colour output from the 8-bit files through ``FusionModel``; the
    losses and gradients on the recorded fused image with the recorded patch crops (as the
    published step, which took the gradient with respect to the cropped fused image). CLIP
    embeddings are compared L2-normalised (the published code normalises them before every
    use).

    Args:
        parts (dict[str, nn.Module]): From :func:`build_ldfusion`.
        io (dict): The ``io.pt`` contents.

    Returns:
        dict[str, Tensor]: Outputs keyed by their ``io.pt`` names.
    """
    import torch.nn.functional as F

    from mmrisfusion.models.losses import directional_cosines, image_entropy
    from mmrisfusion.models.utils import cut_patches
    model, clip_loss, vgg_loss = parts['model'], parts['clip_loss'], parts['vgg_loss']
    clip = clip_loss.clip
    out = {}
    with torch.no_grad():
        # Training data (the published step's batch), network, inference from the 8-bit files.
        train = _fusion_inputs(io['vis_rgb_u8'], io['ir_u8'])
        out['vis_y'], out['ir_y'] = model.lumas(train, train=True)
        out.update(ldfusion_network_outputs(model.fuser, io))
        infer = _fusion_inputs(io['infer_vis_rgb_u8'][None], io['infer_ir_u8'][None])
        out['infer_vis_y'], out['infer_ir'] = model.lumas(infer)
        rgb = model(infer, mode='tensor')[0]
        out['infer_fused_rgb_u8'] = (255 * rgb.clamp(0, 1)).to(torch.uint8)  # truncation

        # Text and image embeddings, patches, cosines.
        batch = io['fused'].shape[0]
        for name in ('vis', 'ir', 'target'):
            out[f'text_dir_{name}'] = getattr(clip_loss, f'{name}_txt')[None]
        out['prompt_dir'] = clip_loss.target_txt.expand(batch, -1)
        vis, ir, fused = io['vis_y'], io['ir_y'], io['fused']
        emb = {name: clip.encode_image(image) for name, image in
               (('vis', vis), ('ir', ir), ('fused', fused))}
        for name, value in emb.items():
            out[f'clip_img_{name}'] = value
        crops = ldfusion_patch_crops(io)
        patches = {name: cut_patches(image, crops, clip.image_size) for name, image in
                   (('vis', vis), ('ir', ir), ('fused', fused))}
        for name, value in patches.items():
            out[f'patch_sum_{name}'] = value.double().sum((1, 2, 3))
        out['patch0_fused'] = patches['fused'][:batch]
        out['patch_entropy_vis'] = image_entropy(patches['vis'])
        out['patch_entropy_ir'] = image_entropy(patches['ir'])
        keep = ((out['patch_entropy_vis'] > clip_loss.entropy_threshold)
                & (out['patch_entropy_ir'] > clip_loss.entropy_threshold))
        out['patch_keep'] = keep
        out['clip_img_patches'] = clip.encode_image(patches['fused'])
        texts = (clip_loss.target_txt, clip_loss.vis_txt, clip_loss.ir_txt)
        out['cos_sim_vis'] = F.cosine_similarity(emb['fused'], emb['vis'], dim=-1)
        out['cos_sim_ir'] = F.cosine_similarity(emb['fused'], emb['ir'], dim=-1)
        out['cos_dir_global_vis'], out['cos_dir_global_ir'] = directional_cosines(
            emb['fused'], emb['vis'], emb['ir'], *texts)
        num = len(crops)
        out['cos_dir_patch_vis'], out['cos_dir_patch_ir'] = directional_cosines(
            out['clip_img_patches'], emb['vis'].repeat(num, 1), emb['ir'].repeat(num, 1),
            *texts)

        # Unweighted terms and their VIS / IR parts, from the cosines.
        out['loss_sim'] = (0.5 * (1 - out['cos_sim_vis'])
                           + 0.5 * (1 - out['cos_sim_ir'])).mean()
        for term, mask in (('dir_global', 1.0), ('dir_patch', keep)):
            for side in ('vis', 'ir'):
                part = (0.5 * (1 - out[f'cos_{term}_{side}']) * mask).mean()
                out[f'loss_{term}_{side}'] = part
                out[f'loss_{term}_{side}_w'] = LDFUSION_WEIGHTS[term] * part
            out[f'loss_{term}'] = out[f'loss_{term}_vis'] + out[f'loss_{term}_ir']
        targets = [torch.maximum(v, i) for v, i in
                   zip(vgg_loss.features(vis), vgg_loss.features(ir))]
        for label, feat, target in zip(LDFUSION_VGG_LABELS, vgg_loss.features(fused),
                                       targets):
            out[f'loss_vgg_{label}'] = F.mse_loss(feat, target)
        out['loss_vgg'] = sum(out[f'loss_vgg_{label}'] for label in LDFUSION_VGG_LABELS)

    # The weighted terms from the loss modules themselves, and their gradients.
    leaf = io['fused'].clone().requires_grad_(True)
    terms = clip_loss(leaf, vis, ir, patch_crops=crops)
    weighted = dict(sim=terms['loss_clip_sim'], dir_global=terms['loss_clip_dir'],
                    dir_patch=terms['loss_clip_patch'], vgg=vgg_loss(leaf, vis, ir))
    for term, value in weighted.items():
        out[f'loss_{term}_w'] = value.detach()
        out[f'grad_fused_{term}'], = torch.autograd.grad(value, leaf, retain_graph=True)
    total = sum(weighted.values())
    out['loss_total'] = total.detach()
    out['grad_fused_total'], = torch.autograd.grad(total, leaf)
    return out


def ldfusion_data_crops(io: dict, images_dir: str, meta: dict) -> Dict[str, Tensor]:
    """The published training crops rebuilt from the image files and the recorded parameters.

    The images are decoded with ``torchvision.io.read_image`` (RGB and GRAY), as the published
    data set does (other JPEG decoders can differ by a grey level).

    Args:
        io (dict): The ``io.pt`` contents (``data_crop_ijhw``, ``data_affine_*``).
        images_dir (str): The folder holding ``meta.json``'s ``inputs.images``.
        meta (dict): The reference folder's ``meta.json``.

    Returns:
        dict[str, Tensor]: ``vis_rgb_u8`` and ``ir_u8`` as the published data set gives them.
    """
    from torchvision.io import ImageReadMode, read_image

    from mmrisfusion.models.utils import AffineCrops, cut_training_crops
    vis_out, ir_out = [], []
    for index, pattern in enumerate(meta['inputs']['images']):
        pair = []
        for modality, mode in (('vi', ImageReadMode.RGB), ('ir', ImageReadMode.GRAY)):
            path = osp.join(images_dir, pattern.replace('{vi,ir}', modality))
            if not osp.isfile(path):
                raise FileNotFoundError(f'{path}: --images must hold the images meta.json '
                                        f'names ({pattern})')
            pair.append(read_image(path, mode))
        image = torch.cat(pair).float()[None]
        top, left, height, width = io['data_crop_ijhw'][index].tolist()
        if height != width:
            raise ValueError(f'the published crops are square, got {height} x {width}')
        crops = AffineCrops(height, torch.tensor([top]), torch.tensor([left]),
                            io['data_affine_angle'][index:index + 1],
                            io['data_affine_translate'][index:index + 1],
                            io['data_affine_scale'][index:index + 1],
                            io['data_affine_shear'][index:index + 1])
        box = torch.tensor([[0, 0, image.shape[-2], image.shape[-1]]])
        cut = cut_training_crops(image, crops, box).round().to(torch.uint8)
        vis_out.append(cut[:, :3])
        ir_out.append(cut[:, 3:])
    return dict(vis_rgb_u8=torch.cat(vis_out), ir_u8=torch.cat(ir_out))


def compare_ldfusion(folder: str, tolerance: float = 1e-5,
                     images_dir: Optional[str] = None) -> List[Tuple[str, float, float]]:
    """Build our components from an LDFusion reference folder and compare every output.

    Args:
        folder (str): The reference folder.
        tolerance (float): Allowed absolute difference (relative to the largest reference
            value for gradients). Defaults to 1e-5.
        images_dir (str, optional): Where the images ``meta.json`` names are, to rebuild the
            training crops too. Defaults to None.

    Returns:
        list[tuple[str, float, float]]: ``(io.pt name, max abs difference, allowed)``. The
        network outputs may differ by the tolerance plus twice their float32 rounding noise
        (our float32 run against our float64 run, about 5e-6 for the fused image), as for
        RIS-FUSION.
    """
    io = _load_ldfusion_io(osp.join(folder, LDFUSION_FILES['io']))
    parts = build_ldfusion(folder)
    ours = ldfusion_outputs(parts, io)
    with torch.no_grad():
        exact = ldfusion_network_outputs(copy.deepcopy(parts['model'].fuser).double(), io)
    noise = {name: _max_abs_diff(name, ours[name], value) for name, value in exact.items()}
    if images_dir is not None:
        with open(osp.join(folder, 'meta.json')) as f:
            ours.update(ldfusion_data_crops(io, images_dir, json.load(f)))
    rows = []
    for name, value in ours.items():
        if name not in io:
            raise KeyError(f'{folder}/io.pt has no {name!r}; see its meta.json')
        reference = io[name]
        if name in LDFUSION_NORMALISED:
            reference = torch.nn.functional.normalize(reference, dim=-1)
        if name in LDFUSION_EXACT:
            if value.shape != reference.shape:
                raise ValueError(f'{name}: our output has shape {tuple(value.shape)}, the '
                                 f'reference {tuple(reference.shape)}')
            rows.append((name, float((value != reference).sum()), 0.0))
            continue
        allowed = tolerance + NOISE_FACTOR * noise.get(name, 0.0)
        if name in LDFUSION_UINT8:
            allowed = 1.0
        elif name.startswith('grad_'):
            allowed = tolerance * reference.abs().max().item()
        elif reference.dtype == torch.uint8:
            allowed = 0.0
        rows.append((name, _max_abs_diff(name, value, reference), allowed))
    return rows


def report_bounds(rows: List[Tuple[str, float, float]]) -> List[str]:
    """Print ``(name, difference, allowed)`` rows and return the names that exceed.

    Args:
        rows (list[tuple[str, float, float]]): From :func:`compare_ldfusion`.

    Returns:
        list[str]: Names of the outputs whose difference exceeds what is allowed.
    """
    width = max(len(name) for name, _, _ in rows)
    print(f'{"output":<{width}}  max abs diff   allowed')
    failed = []
    for name, diff, allowed in rows:
        ok = diff <= allowed
        print(f'{name:<{width}}  {diff:12.3e}  {allowed:8.1e}  {"ok" if ok else "FAIL"}')
        if not ok:
            failed.append(name)
    return failed


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Compare our implementation with outputs saved from the published code: '
        'a converted official RIS-FUSION checkpoint with an IO file (default), or an LDFusion '
        'reference folder (--method ldfusion)')
    parser.add_argument('paths', nargs='+', metavar='PATH',
                        help='risfusion: CHECKPOINT IO_FILE (official checkpoint with model + '
                        'prefusion_model; IO file of inputs and published outputs, tensors '
                        'only); ldfusion: FOLDER (official_net.pth, clip_tiny_openai.pt, '
                        'vgg19_features.pt, io.pt)')
    parser.add_argument('--method', choices=['risfusion', 'ldfusion'], default='risfusion',
                        help='which published method (default: risfusion)')
    parser.add_argument('--tolerance', type=float, default=None,
                        help='risfusion: allowed absolute difference beyond the float32 '
                        'rounding noise (default: 1e-4); ldfusion: allowed absolute difference, '
                        'relative for gradients (default: 1e-5)')
    parser.add_argument('--strict', action='store_true',
                        help='risfusion: allow only --tolerance, ignoring the measured float32 '
                        'noise (fails on ill-conditioned outputs such as the LAVT backbone '
                        'maps)')
    parser.add_argument('--images', metavar='IVIF_DIR',
                        help='ldfusion: the folder of the images meta.json names, to rebuild '
                        'the published training crops too')
    args = parser.parse_args(argv)
    expected = 2 if args.method == 'risfusion' else 1
    if len(args.paths) != expected:
        parser.error(f'--method {args.method} takes '
                     f'{"CHECKPOINT IO_FILE" if expected == 2 else "FOLDER"}, got '
                     f'{len(args.paths)} path(s)')
    if args.method == 'risfusion':
        args.checkpoint, args.io_file = args.paths
        args.tolerance = 1e-4 if args.tolerance is None else args.tolerance
    else:
        args.folder, = args.paths
        args.tolerance = 1e-5 if args.tolerance is None else args.tolerance
    return args


def report(rows: List[Tuple[str, float, float]], tolerance: float = 1e-4,
           strict: bool = False) -> List[str]:
    """Print the comparison table and return the outputs that do not match.

    Args:
        rows (list[tuple[str, float, float]]): From :func:`compare`.
        tolerance (float): Allowed difference beyond the rounding noise. Defaults to 1e-4.
        strict (bool): Allow only ``tolerance``, ignoring the noise. Defaults to False.

    Returns:
        list[str]: Names of the outputs whose difference exceeds what is allowed.
    """
    width = max(len(name) for name, _, _ in rows)
    print(f'{"output":<{width}}  max abs diff  float32 noise  allowed')
    failed = []
    for name, diff, noise in rows:
        allowed = tolerance + (0.0 if strict else NOISE_FACTOR * noise)
        ok = diff <= allowed
        print(f'{name:<{width}}  {diff:12.3e}  {noise:13.3e}  {allowed:7.1e}  '
              f'{"ok" if ok else "FAIL"}')
        if not ok:
            failed.append(name)
    return failed


def main(argv: Optional[list] = None) -> int:
    """Print the differences; return 1 when one exceeds what is allowed."""
    args = parse_args(argv)
    init_default_scope('mmrisfusion')
    if args.method == 'ldfusion':
        failed = report_bounds(compare_ldfusion(args.folder, args.tolerance, args.images))
    else:
        checkpoint = load_weights_only(args.checkpoint, extra_types=[argparse.Namespace])
        io = _load_io(args.io_file)
        failed = report(compare(build_reference_model(checkpoint), io), args.tolerance,
                        args.strict)
    if failed:
        print(f'FAILED: {", ".join(failed)}')
        return 1
    print('all outputs match the reference')
    return 0


if __name__ == '__main__':
    sys.exit(main())
