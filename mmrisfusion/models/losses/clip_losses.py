"""LDFusion's language-driven loss in CLIP space (docs/ldfusion.md#language-driven-loss).

Three prompts place the fusion goal in CLIP's embedding space: an anchor for each modality
(``t_v`` "a visible gray image", ``t_i`` "an infrared image") and the target ``p`` ("a clear
image with detailed background and salient objects"). The fused image ``f`` should move away
from each input image ``v``, ``i`` in the direction the text moves from that modality's anchor
to the target:

``L_dir = 0.5 (1 - cos(norm(f - v), norm(p - t_v))) + 0.5 (1 - cos(norm(f - i), norm(p - t_i)))``

computed on whole images (global) and on random affine patches of the fused image compared with
the whole-image VIS/IR embeddings (patch), where only patches whose VIS and IR crops both carry
enough information (entropy > 6 bits) count. A similarity regulariser
``L_sim = 0.5 (1 - cos(f, v)) + 0.5 (1 - cos(f, i))`` keeps the fused image close to both.

Every function here works on luma images in [0, 1], so :class:`CLIPLanguageLoss` follows the
fusion-term contract ``forward(fused_y, vis_y, ir_y)`` and plugs into RIS-FUSION's fuser too.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmrisfusion.registry import MODELS

from ..clip.encoders import FrozenCLIPEncoder, build_clip_encoder
from ..utils.affine_crops import AffineCrops, cut_patches, patch_side, sample_affine_crops
from .loss_term import BaseFusionLoss

VIS_PROMPT = 'a visible gray image'
IR_PROMPT = 'an infrared image'
TARGET_PROMPT = 'a clear image with detailed background and salient objects'


def directional_cosines(fused: Tensor, vis: Tensor, ir: Tensor, target_txt: Tensor,
                        vis_txt: Tensor, ir_txt: Tensor) -> Tuple[Tensor, Tensor]:
    """Cosines between the image and text directions in CLIP space, VIS and IR.

    Args:
        fused (Tensor): ``(N, D)`` embeddings of the fused images (or patches).
        vis (Tensor): ``(N, D)`` embeddings of the matching VIS images.
        ir (Tensor): ``(N, D)`` embeddings of the matching IR images.
        target_txt (Tensor): ``(D, )`` embedding of the target prompt.
        vis_txt (Tensor): ``(D, )`` embedding of the VIS anchor prompt.
        ir_txt (Tensor): ``(D, )`` embedding of the IR anchor prompt.

    Returns:
        tuple[Tensor, Tensor]: ``cos(norm(f - v), norm(p - t_v))`` and
        ``cos(norm(f - i), norm(p - t_i))``, each ``(N, )``.
    """
    d_img_v = F.normalize(fused - vis, dim=-1)
    d_img_i = F.normalize(fused - ir, dim=-1)
    d_txt_v = F.normalize(target_txt - vis_txt, dim=-1)
    d_txt_i = F.normalize(target_txt - ir_txt, dim=-1)
    return (F.cosine_similarity(d_img_v, d_txt_v.expand_as(d_img_v), dim=-1),
            F.cosine_similarity(d_img_i, d_txt_i.expand_as(d_img_i), dim=-1))


def directional_loss(fused: Tensor, vis: Tensor, ir: Tensor, target_txt: Tensor,
                     vis_txt: Tensor, ir_txt: Tensor) -> Tensor:
    """Per-sample directional loss ``0.5 (1 - cos_v) + 0.5 (1 - cos_i)``.

    Args:
        fused (Tensor): ``(N, D)`` embeddings of the fused images (or patches).
        vis (Tensor): ``(N, D)`` embeddings of the matching VIS images.
        ir (Tensor): ``(N, D)`` embeddings of the matching IR images.
        target_txt (Tensor): ``(D, )`` embedding of the target prompt.
        vis_txt (Tensor): ``(D, )`` embedding of the VIS anchor prompt.
        ir_txt (Tensor): ``(D, )`` embedding of the IR anchor prompt.

    Returns:
        Tensor: ``(N, )`` values in [0, 2].
    """
    cos_v, cos_i = directional_cosines(fused, vis, ir, target_txt, vis_txt, ir_txt)
    return 0.5 * (1 - cos_v) + 0.5 * (1 - cos_i)


def similarity_loss(fused: Tensor, vis: Tensor, ir: Tensor) -> Tensor:
    """Per-sample similarity regulariser ``0.5 (1 - cos(f, v)) + 0.5 (1 - cos(f, i))``.

    Args:
        fused (Tensor): ``(N, D)`` fused-image embeddings.
        vis (Tensor): ``(N, D)`` VIS embeddings.
        ir (Tensor): ``(N, D)`` IR embeddings.

    Returns:
        Tensor: ``(N, )`` values in [0, 2].
    """
    return (0.5 * (1 - F.cosine_similarity(fused, vis, dim=-1))
            + 0.5 * (1 - F.cosine_similarity(fused, ir, dim=-1)))


def image_entropy(images: Tensor, bins: int = 256) -> Tensor:
    """Shannon entropy (bits) of each image's intensity histogram on [0, 1].

    Bin ``k`` holds values in ``[k / bins, (k + 1) / bins)``, 1.0 goes to the last bin (as
    ``torch.histc``); every channel of a sample counts in one histogram.

    Args:
        images (Tensor): ``(N, C, H, W)`` images in [0, 1].
        bins (int): Number of histogram bins. Defaults to 256.

    Returns:
        Tensor: ``(N, )`` entropies in bits.
    """
    flat = images.detach().flatten(1)
    index = (flat * bins).floor().clamp_(0, bins - 1).long()
    counts = torch.zeros(flat.shape[0], bins, device=flat.device, dtype=torch.float64)
    counts.scatter_add_(1, index, torch.ones_like(index, dtype=torch.float64))
    prob = counts / flat.shape[1]
    terms = torch.where(prob > 0, prob * torch.log2(prob.clamp_min(1e-300)),
                        torch.zeros_like(prob))
    return (-terms.sum(1)).to(images.dtype)


@MODELS.register_module()
class CLIPLanguageLoss(BaseFusionLoss):
    """LDFusion's language-driven loss: similarity, global and patch directional terms.

    ``loss = loss_weight * (sim_weight L_sim + global_weight L_dir + patch_weight L_dir_patch)``
    with the published weights 6, 2 and 10 by default. One frozen CLIP serves all three terms;
    a term whose weight is 0 is not computed (set two of them to 0 to use one alone).

    Patch term, as published (docs/ldfusion.md#patch-term): one side per step,
    ``int(min(H, W) * U(*patch_side_range))`` (224 px training crops give the published
    ``int(224 * U(0.5, 0.8))``), shared by ``num_patches`` crops, each at a uniform position
    and warped by its own ``RandomAffine(degrees, translate, scale, shear)`` (nearest, fill 0;
    the published ``translate=(0, 0.1)`` shifts only vertically), then resized bilinearly to
    CLIP's input size. The same crops are cut from the fused, VIS and IR images of every
    sample (K crops x B samples patches, crop ``k`` of sample ``b`` at ``k * B + b``). A patch
    counts only when both its VIS and IR crops have entropy above ``entropy_threshold`` bits;
    rejected patches add 0 but still count in the mean, as published. The crops are drawn on
    the images' device and cut in one batch (:mod:`~mmrisfusion.models.utils.affine_crops`),
    pixel for pixel what torchvision's transforms give for the same parameters.

    Args:
        clip (dict | FrozenCLIPEncoder): The CLIP encoder or its config, e.g.
            ``dict(type='OpenCLIPEncoder', checkpoint='ViT-B-32.pt')``. Required.
        vis_prompt (str): VIS anchor prompt. Defaults to 'a visible gray image'.
        ir_prompt (str): IR anchor prompt. Defaults to 'an infrared image'.
        target_prompt (str): The fusion goal. Defaults to
            'a clear image with detailed background and salient objects'.
        sim_weight (float): Weight of the similarity regulariser. Defaults to 6.0.
        global_weight (float): Weight of the whole-image directional loss. Defaults to 2.0.
        patch_weight (float): Weight of the patch directional loss. Defaults to 10.0.
        num_patches (int): Crops per step. Defaults to 32.
        patch_side_range (tuple[float, float]): Crop side as a fraction of ``min(H, W)``,
            drawn once per step. Defaults to (0.5, 0.8).
        degrees (float): Maximum patch rotation in degrees. Defaults to 5.0.
        translate (tuple[float, float]): Maximum patch shift as fractions of the side,
            horizontal then vertical. Defaults to (0.0, 0.1).
        scale (tuple[float, float]): Patch zoom range. Defaults to (1.0, 1.5).
        shear (float): Maximum patch x-shear in degrees. Defaults to 5.0.
        entropy_threshold (float): Minimum entropy (bits, 256 bins) of the VIS and IR crops
            for a patch to count. Defaults to 6.0.
        loss_weight (float): Weight of the whole loss. Defaults to 1.0.
        loss_name (str): Name in the loss dict; must start with 'loss_'.
            Defaults to 'loss_clip'.
        return_terms (bool): Return a dict of the three weighted terms (for logging) instead
            of their sum. Defaults to False (a scalar, the fusion-term contract).
    """

    def __init__(self,
                 clip: Union[dict, FrozenCLIPEncoder, None] = None,
                 vis_prompt: str = VIS_PROMPT,
                 ir_prompt: str = IR_PROMPT,
                 target_prompt: str = TARGET_PROMPT,
                 sim_weight: float = 6.0,
                 global_weight: float = 2.0,
                 patch_weight: float = 10.0,
                 num_patches: int = 32,
                 patch_side_range: Sequence[float] = (0.5, 0.8),
                 degrees: float = 5.0,
                 translate: Sequence[float] = (0.0, 0.1),
                 scale: Sequence[float] = (1.0, 1.5),
                 shear: float = 5.0,
                 entropy_threshold: float = 6.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_clip',
                 return_terms: bool = False) -> None:
        super().__init__(loss_weight, loss_name)
        if clip is None:
            raise ValueError("CLIPLanguageLoss needs clip=dict(type='OpenCLIPEncoder', "
                             "checkpoint=...) or dict(type='HFCLIPEncoder', pretrained=...)")
        if not 0 < patch_side_range[0] <= patch_side_range[1] <= 1:
            raise ValueError(f'patch_side_range must be (low, high) with 0 < low <= high <= 1, '
                             f'got {patch_side_range}')
        if not isinstance(translate, (tuple, list)) or len(translate) != 2:
            raise ValueError(f'translate must be (horizontal, vertical) fractions of the side, '
                             f'got {translate}')
        self.clip = build_clip_encoder(clip)
        self.sim_weight = sim_weight
        self.global_weight = global_weight
        self.patch_weight = patch_weight
        self.num_patches = num_patches
        self.patch_side_range = tuple(patch_side_range)
        self.affine = dict(degrees=degrees, translate=tuple(translate), scale=tuple(scale),
                           shear=shear)
        self.entropy_threshold = entropy_threshold
        self.return_terms = return_terms
        self.prompts = (target_prompt, vis_prompt, ir_prompt)
        target, vis, ir = self.clip.encode_text(list(self.prompts))
        self.register_buffer('target_txt', target, persistent=False)
        self.register_buffer('vis_txt', vis, persistent=False)
        self.register_buffer('ir_txt', ir, persistent=False)

    def sample_patch_crops(self, height: int, width: int,
                           device: Union[str, torch.device] = 'cpu') -> AffineCrops:
        """Draw one step's patch crops: one side, ``num_patches`` positions and affines.

        Args:
            height (int): Image height.
            width (int): Image width.
            device (str | torch.device): Where to draw. Defaults to 'cpu'.

        Returns:
            AffineCrops: The crops.
        """
        side = patch_side(min(height, width), self.patch_side_range)
        return sample_affine_crops(self.num_patches, side, height, width, device=device,
                                   **self.affine)

    def patch_loss(self, fused_y: Tensor, vis_y: Tensor, ir_y: Tensor, vis_emb: Tensor,
                   ir_emb: Tensor,
                   crops: Optional[AffineCrops] = None) -> Tuple[Tensor, Tensor]:
        """The patch directional loss and which patches passed the entropy filter.

        Args:
            fused_y (Tensor): ``(B, 1, H, W)`` fused luma in [0, 1].
            vis_y (Tensor): ``(B, 1, H, W)`` VIS luma in [0, 1].
            ir_y (Tensor): ``(B, 1, H, W)`` IR in [0, 1].
            vis_emb (Tensor): ``(B, D)`` whole-image VIS embeddings.
            ir_emb (Tensor): ``(B, D)`` whole-image IR embeddings.
            crops (AffineCrops, optional): The crops; drawn by :meth:`sample_patch_crops`
                when None. Defaults to None.

        Returns:
            tuple[Tensor, Tensor]: The mean over all ``K * B`` patches (rejected ones as 0)
            and the ``(K * B, )`` boolean mask of kept patches (crop-major order).
        """
        if crops is None:
            crops = self.sample_patch_crops(*fused_y.shape[-2:], device=fused_y.device)
        size = self.clip.image_size
        num = len(crops)
        with torch.no_grad():
            keep = ((image_entropy(cut_patches(vis_y, crops, size)) > self.entropy_threshold)
                    & (image_entropy(cut_patches(ir_y, crops, size))
                       > self.entropy_threshold))
        patch_emb = self.clip.encode_image(cut_patches(fused_y, crops, size))
        per_patch = directional_loss(patch_emb, vis_emb.repeat(num, 1), ir_emb.repeat(num, 1),
                                     self.target_txt, self.vis_txt, self.ir_txt)
        return (per_patch * keep).sum() / per_patch.numel(), keep

    def forward(self, fused_y: Tensor, vis_y: Tensor, ir_y: Tensor,
                patch_crops: Optional[AffineCrops] = None
                ) -> Union[Tensor, Dict[str, Tensor]]:
        """Compute the weighted language-driven loss.

        Args:
            fused_y (Tensor): ``(B, 1, H, W)`` fused luma in [0, 1].
            vis_y (Tensor): ``(B, 1, H, W)`` VIS luma in [0, 1].
            ir_y (Tensor): ``(B, 1, H, W)`` IR in [0, 1].
            patch_crops (AffineCrops, optional): The patch crops; drawn at random when None
                (training). Defaults to None.

        Returns:
            Tensor | dict[str, Tensor]: The weighted sum, or with ``return_terms`` the weighted
            terms as ``{loss_name}_sim``, ``{loss_name}_dir``, ``{loss_name}_patch``.
        """
        self.check_lumas(fused_y, vis_y, ir_y)
        with torch.no_grad():
            vis_emb = self.clip.encode_image(vis_y)
            ir_emb = self.clip.encode_image(ir_y)
        terms = {}
        if self.sim_weight or self.global_weight:
            fused_emb = self.clip.encode_image(fused_y)
            if self.sim_weight:
                terms['sim'] = self.sim_weight * similarity_loss(fused_emb, vis_emb,
                                                                 ir_emb).mean()
            if self.global_weight:
                terms['dir'] = self.global_weight * directional_loss(
                    fused_emb, vis_emb, ir_emb, self.target_txt, self.vis_txt,
                    self.ir_txt).mean()
        if self.patch_weight:
            terms['patch'] = self.patch_weight * self.patch_loss(
                fused_y, vis_y, ir_y, vis_emb, ir_emb, patch_crops)[0]
        if not terms:
            raise ValueError('CLIPLanguageLoss: sim_weight, global_weight and patch_weight '
                             'are all 0, nothing to compute')
        terms = {f'{self.loss_name}_{key}': self.loss_weight * value
                 for key, value in terms.items()}
        if self.return_terms:
            return terms
        return sum(terms.values())
