"""RIS-FUSION: a text-conditioned fuser cascaded into a language-aware segmentation network."""
from typing import Dict, List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import BaseSegmentor
from mmseg.utils import add_prefix
from torch import Tensor, nn

from mmrisfusion.registry import MODELS
from mmrisfusion.structures import RISDataSample, to_original_frame
from mmrisfusion.utils.typing_utils import (
    ConfigType,
    OptConfigType,
    OptMultiConfig,
    OptSampleList,
    SampleList,
)

from ..fusers.constants import NORM_STATS
from ..losses.fusion_losses import fusion_luma
from ..losses.loss_term import build_loss_terms, loss_terms_dict
from ..utils.build import build_module
from ..utils.color import denormalize
from ..utils.predictions import class_argmax

INPUT_KEYS = ('vis', 'ir', 'token_ids', 'token_mask')
ModuleOrConfig = Union[ConfigType, nn.Module]


@MODELS.register_module()
class RISFusion(BaseSegmentor):
    """Text -> fuser -> language-aware backbone -> decode head, trained with one loss.

    The referring expression steers both the fusion of the infrared and visible images and
    the segmentation of the fused image; the fusion terms keep the fused image faithful to
    both sources while the segmentation loss makes it useful for the referred object.

    Call graph (``inputs`` is the data preprocessor's dict)::

        loss(inputs, data_samples)
          text_encoder(token_ids, token_mask)        -> text_feats (B,T,D), text_mask (B,T)
          fuser(vis, ir, text_feats, text_mask)      -> fused (B,3,H,W), VIS-normalised
          backbone(fused, text_feats, text_mask)     -> 4 maps (B,C_i,H/2^(i+2),W/2^(i+2))
          decode_head.loss(maps, data_samples)       -> decode.loss_* (e.g. Dice)
          [side_swap_loss: the same pass also runs some expressions with their side
           words swapped                             -> decode.loss_side_swap]
          loss_fusion(fused, vis, ir)                -> fusion.loss_* = lambda * w_k * term_k
        predict(inputs, data_samples)
          encode_decode -> (same path) -> decode_head.predict -> logits at the input size
          postprocess_result -> pred_sem_seg, seg_logits (unpadded, at ori_shape or,
                                with test_cfg.output_shape='img_shape', at the network's
                                resolution as the published evaluation)
          + pred_fused (3,h,w) in [0,1] (unpadded, at the network's resolution)
        _forward(inputs) -> logits (B,2,H,W) at the input size
        forward_with_text_feats(vis, ir, text_feats, text_mask)
          -> (fused, backbone maps, logits): the network without the text encoder, as the
             published code runs it; used to compare with the published outputs.

    Every mode fuses with the text. (The published validation calls the fuser without the
    text and crashes; evaluation here runs the network as it was trained.)

    Every part may be given built (an ``nn.Module``) or as its config.

    Args:
        text_encoder (dict | nn.Module): The text encoder, e.g. ``HFTextEncoder``.
        fuser (dict | nn.Module): The fuser, e.g. ``UNetFuser``; it exposes the statistics
            of its normalisation as the tensors ``mean_vis``, ``std_vis``, ``mean_ir``,
            ``std_ir`` (0..1 scale).
        backbone (dict | nn.Module): The language-aware backbone, e.g.
            ``LAVTSwinTransformer``.
        decode_head (dict | nn.Module): The decode head (mmseg ``BaseDecodeHead``, 2
            classes).
        fusion_losses (dict | nn.Module | list, optional): Fusion loss terms
            (:class:`~mmrisfusion.models.losses.BaseFusionLoss`), each called as
            ``term(fused_y, vis_y, ir_y)`` on the luma in [0, 1] of the de-normalised images
            and weighted by its own ``loss_weight``; each returns a scalar or a dict of
            ``loss_*`` scalars and needs a distinct ``loss_name``. Defaults to None (no
            fusion loss: the fuser learns from the segmentation alone).
        fusion_loss_weight (float): lambda, the factor on every fusion term.
            Defaults to 3.0.
        side_swap_loss (dict | nn.Module, optional): A
            :class:`~mmrisfusion.models.losses.SideSwapLoss`: some expressions of each
            training batch run a second time with "left" and "right" swapped, on the same
            images, and their masks are penalised where they cover the original target (not
            in LAVT or RIS-FUSION). Defaults to None.
        train_cfg (dict, optional): Passed to the decode head's ``loss``. Defaults to None.
        test_cfg (dict, optional): Passed to the decode head's ``predict``; its
            ``output_shape`` ('ori_shape' or 'img_shape') sets the resolution of the
            predicted masks (:meth:`postprocess_result`). Defaults to None ('ori_shape').
        data_preprocessor (dict, optional): Config of the data preprocessor, e.g.
            ``RISDataPreProcessor``. Defaults to None.
        init_cfg (dict | list[dict], optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 text_encoder: ModuleOrConfig,
                 fuser: ModuleOrConfig,
                 backbone: ModuleOrConfig,
                 decode_head: ModuleOrConfig,
                 fusion_losses: Union[None, ModuleOrConfig, Sequence[ModuleOrConfig]] = None,
                 fusion_loss_weight: float = 3.0,
                 side_swap_loss: Union[None, ModuleOrConfig] = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.text_encoder = build_module(text_encoder, 'RISFusion.text_encoder')
        self.fuser = build_module(fuser, 'RISFusion.fuser')
        self.backbone = build_module(backbone, 'RISFusion.backbone')
        self.decode_head = build_module(decode_head, 'RISFusion.decode_head')
        self.align_corners = self.decode_head.align_corners
        self.num_classes = self.decode_head.num_classes
        self.out_channels = self.decode_head.out_channels

        self.fusion_losses = build_loss_terms(fusion_losses, 'RISFusion.fusion_losses')
        self.fusion_loss_weight = fusion_loss_weight
        self.side_swap_loss = (None if side_swap_loss is None else
                               build_module(side_swap_loss, 'RISFusion.side_swap_loss'))
        missing = [name for name in NORM_STATS
                   if not isinstance(getattr(self.fuser, name, None), Tensor)]
        if missing:
            raise AttributeError(
                f'RISFusion: the fuser {type(self.fuser).__name__} must expose the '
                f'normalisation of its inputs as tensors {NORM_STATS} (0..1 scale, as '
                f'UNetFuser does); missing {missing}')

        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    @staticmethod
    def _check_inputs(inputs: dict) -> None:
        """Raise a clear error unless ``inputs`` is the preprocessor's dict."""
        if not isinstance(inputs, dict) or any(k not in inputs for k in INPUT_KEYS):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise KeyError(f'RISFusion expects inputs as a dict with keys {INPUT_KEYS} (what '
                           f'RISDataPreProcessor gives), got {got}')

    def _run_network(self, inputs: dict) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        """Text encoder, fuser and backbone: the fused image and the decoder's inputs."""
        self._check_inputs(inputs)
        text_feats, text_mask = self.text_encoder(inputs['token_ids'], inputs['token_mask'])
        fused = self.fuser(inputs['vis'], inputs['ir'], text_feats, text_mask)
        return fused, self.backbone(fused, text_feats, text_mask)

    def _logits(self, feats: Tuple[Tensor, ...], size: Tuple[int, int]) -> Tensor:
        """Decode the backbone maps into logits bilinearly resized to ``size``."""
        metas = [dict(img_shape=size, pad_shape=size)]
        return self.decode_head.predict(feats, metas, self.test_cfg)

    def forward_with_text_feats(self, vis: Tensor, ir: Tensor, text_feats: Tensor,
                                text_mask: Tensor) -> Tuple[Tensor, Tuple[Tensor, ...], Tensor]:
        """Run the network on given word features, bypassing the text encoder.

        The published code computes the word features outside its networks; this entry
        point takes them directly, so its outputs can be compared with the published ones
        (``tools/analysis_tools/check_reference.py``). The name and the outputs are stable.

        Args:
            vis (Tensor): Normalised visible images (B, 3, H, W).
            ir (Tensor): Normalised infrared images (B, C, H, W).
            text_feats (Tensor): Word features (B, T, D).
            text_mask (Tensor): (B, T), 1 for words and 0 for padding.

        Returns:
            tuple: ``fused`` (B, 3, H, W), the fused image normalised with the VIS
            statistics; ``feats``, the backbone's maps (the decoder's inputs); ``logits``
            (B, num_classes, H, W) at the input size.
        """
        fused = self.fuser(vis, ir, text_feats, text_mask)
        feats = self.backbone(fused, text_feats, text_mask)
        return fused, feats, self._logits(feats, tuple(vis.shape[2:]))

    def fusion_lumas(self, fused: Tensor, vis: Tensor, ir: Tensor) -> Tuple[Tensor, ...]:
        """Luma in [0, 1] of the de-normalised fused, VIS and IR images.

        The statistics are the fuser's own (persistent buffers, so they travel with a
        checkpoint): the fused image is de-normalised with the VIS ones, as the fuser
        normalises it.

        Args:
            fused (Tensor): Fused images (B, 3, H, W), normalised with the VIS statistics.
            vis (Tensor): Normalised visible images (B, 3, H, W).
            ir (Tensor): Normalised infrared images (B, C, H, W).

        Returns:
            tuple[Tensor]: ``fused_y``, ``vis_y``, ``ir_y``, each (B, 1, H, W).
        """
        fuser = self.fuser
        return fusion_luma(fused, vis, ir, fuser.mean_vis, fuser.std_vis, fuser.mean_ir,
                           fuser.std_ir)

    def loss_fusion(self, fused: Tensor, vis: Tensor, ir: Tensor) -> Dict[str, Tensor]:
        """The fusion terms, each already multiplied by lambda and its own weight.

        Args:
            fused (Tensor): Fused images (B, 3, H, W), normalised with the VIS statistics.
            vis (Tensor): Normalised visible images (B, 3, H, W).
            ir (Tensor): Normalised infrared images (B, C, H, W).

        Returns:
            dict[str, Tensor]: ``{term.loss_name: lambda * term(fused_y, vis_y, ir_y)}``, or
            lambda times each entry of a term that returns a dict.
        """
        return loss_terms_dict(self.fusion_losses, *self.fusion_lumas(fused, vis, ir),
                               factor=self.fusion_loss_weight)

    def extract_feat(self, inputs: dict) -> Tuple[Tensor, ...]:
        """The backbone's maps of the fused image.

        Args:
            inputs (dict): The preprocessor's dict (``vis``, ``ir``, ``token_ids``,
                ``token_mask``).

        Returns:
            tuple[Tensor]: The decoder's inputs.
        """
        return self._run_network(inputs)[1]

    def encode_decode(self, inputs: dict, batch_img_metas: List[dict]) -> Tensor:
        """Logits at the (padded) input size.

        Args:
            inputs (dict): The preprocessor's dict.
            batch_img_metas (list[dict]): Metainfo of the samples (unused: the logits are
                resized to the batch's input size, which covers every sample).

        Returns:
            Tensor: Logits (B, num_classes, H, W).
        """
        return self._logits(self.extract_feat(inputs), tuple(inputs['vis'].shape[2:]))

    def loss(self, inputs: dict, data_samples: SampleList) -> Dict[str, Tensor]:
        """Segmentation loss of the decode head plus the weighted fusion terms.

        Args:
            inputs (dict): The preprocessor's dict.
            data_samples (list[RISDataSample]): Samples with ``gt_sem_seg``.

        Returns:
            dict[str, Tensor]: ``decode.loss_*`` (and ``decode.acc_seg``; with
            ``side_swap_loss``, its term, e.g. ``decode.loss_side_swap``) and
            ``fusion.loss_*``; their sum (mmengine adds every ``loss`` key) is the total.
        """
        swap = self.side_swap_loss
        network_inputs = inputs
        rows = None
        if swap is not None and swap.active():
            # The side-swapped expressions ride along in the same pass, with their images.
            rows, swapped_ids = swap.swap(inputs['token_ids'], inputs['token_mask'])
            network_inputs = dict(
                vis=torch.cat([inputs['vis'], inputs['vis'][rows]]),
                ir=torch.cat([inputs['ir'], inputs['ir'][rows]]),
                token_ids=torch.cat([inputs['token_ids'], swapped_ids]),
                token_mask=torch.cat([inputs['token_mask'], inputs['token_mask'][rows]]))
        fused, feats = self._run_network(network_inputs)
        batch = len(data_samples)
        if rows is not None:  # the swapped expressions follow the batch
            swapped_feats = [f[batch:] for f in feats]
            fused, feats = fused[:batch], [f[:batch] for f in feats]
        losses = add_prefix(self.decode_head.loss(feats, data_samples, self.train_cfg),
                            'decode')
        if swap is not None:
            if rows is not None and rows.numel():
                targets = torch.stack(
                    [data_samples[i].gt_sem_seg.data[0] for i in rows.tolist()])
                term = swap(self.decode_head(swapped_feats), targets, batch)
            else:
                term = fused.new_zeros(())
            losses[f'decode.{swap.loss_name}'] = term
        losses.update(add_prefix(self.loss_fusion(fused, inputs['vis'], inputs['ir']),
                                 'fusion'))
        return losses

    def predict(self, inputs: dict, data_samples: OptSampleList = None) -> SampleList:
        """Predict the mask of the referred object and the fused image.

        Args:
            inputs (dict): The preprocessor's dict.
            data_samples (list[RISDataSample], optional): Samples with metainfo
                (``ori_shape``, ``img_shape``, ``padding_size``, flips). Defaults to None
                (no padding, no resizing).

        Returns:
            list[RISDataSample]: The given samples (or new ones) with ``seg_logits`` and
            ``pred_sem_seg`` (see :meth:`postprocess_result`) and ``pred_fused``, the fused
            image (3, h, w) in [0, 1] without padding, at the network's resolution.
        """
        fused, feats = self._run_network(inputs)
        # float32 whatever the autocast dtype: metrics and saved images are computed from these.
        seg_logits = self._logits(feats, tuple(inputs['vis'].shape[2:])).float()
        fused = fused.float()
        if data_samples is None:
            shape = tuple(seg_logits.shape[2:])
            data_samples = [RISDataSample(metainfo=dict(ori_shape=shape, img_shape=shape))
                            for _ in range(seg_logits.shape[0])]
        fused_rgb = denormalize(fused, self.fuser.mean_vis, self.fuser.std_vis)
        for sample, image in zip(data_samples, fused_rgb):
            sample.pred_fused = PixelData(data=to_original_frame(image, sample.metainfo))
        return self.postprocess_result(seg_logits, data_samples)

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """Remove the padding, undo flips, resize and take the argmax over the classes.

        ``test_cfg.output_shape`` chooses the resolution of ``seg_logits`` and
        ``pred_sem_seg``: ``'ori_shape'`` (the default, as mmseg: back to the original
        image size, to compare with a mask loaded at that size) or ``'img_shape'`` (the
        network's resolution without padding: the published evaluation, which compares
        with the mask resized by the pipeline, 480x480 for MM-RIS).

        Args:
            seg_logits (Tensor): Logits (B, num_classes, H, W) at the padded input size.
            data_samples (list[RISDataSample], optional): Samples with metainfo. Defaults
                to None (new samples, logits kept as they are).

        Returns:
            list[RISDataSample]: Samples with ``seg_logits`` and ``pred_sem_seg`` (1, h, w).
        """
        if data_samples is None:
            return super().postprocess_result(seg_logits, None)
        output_shape = (self.test_cfg or {}).get('output_shape', 'ori_shape')
        if output_shape not in ('ori_shape', 'img_shape'):
            raise ValueError("RISFusion: test_cfg.output_shape must be 'ori_shape' or "
                             f"'img_shape', got {output_shape!r}")
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            logits = to_original_frame(seg_logits[i:i + 1], meta)
            size = tuple(meta.get(output_shape, logits.shape[2:]))[:2]
            if tuple(logits.shape[2:]) != size:
                logits = F.interpolate(logits, size=size, mode='bilinear',
                                       align_corners=self.align_corners)
            logits = logits[0]
            pred = class_argmax(logits, 0, keepdim=True)
            sample.set_data(dict(seg_logits=PixelData(data=logits),
                                 pred_sem_seg=PixelData(data=pred)))
        return data_samples

    def _forward(self, inputs: dict, data_samples: OptSampleList = None) -> Tensor:
        """Logits at the input size, without post-processing.

        Args:
            inputs (dict): The preprocessor's dict.
            data_samples (list[RISDataSample], optional): Unused. Defaults to None.

        Returns:
            Tensor: Logits (B, num_classes, H, W).
        """
        return self.encode_decode(inputs, [])
