"""A fusion-only model: VIS luma + IR -> fused luma, trained with unsupervised fusion losses."""
from typing import Dict, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModel
from mmengine.structures import PixelData
from torch import Tensor, nn

from mmrisfusion.registry import MODELS
from mmrisfusion.structures import RISDataSample, padding_of, to_original_frame
from mmrisfusion.utils.typing_utils import (
    ConfigType,
    OptConfigType,
    OptMultiConfig,
    OptSampleList,
    SampleList,
)

from ..losses.loss_term import build_loss_terms, loss_terms_dict
from ..utils.affine_crops import PUBLISHED_AFFINE, cut_training_crops, sample_affine_crops
from ..utils.build import build_module
from ..utils.color import (
    IMAGENET_MEAN_255,
    IMAGENET_STD_255,
    denormalize,
    rgb_to_luma,
    rgb_to_luma_uint8,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)


@MODELS.register_module()
class FusionModel(BaseModel):
    """Infrared-visible fusion without text or masks, e.g. LDFusion.

    The fuser works on one channel: the VIS luma (BT.601 Y) and the IR intensity, and returns
    the fused luma; colour output takes Cb and Cr from the VIS image, as published. In
    training the VIS luma is by default OpenCV's 8-bit Y, as in LDFusion's published data
    set (``train_vis_luma``); inference uses the float luma, as its published test script.

    Call graph (``inputs`` is the data preprocessor's dict with ``vis`` (B, 3, H, W) and
    ``ir`` (B, C, H, W), each normalised with its own statistics)::

        loss(inputs, data_samples)
          lumas(inputs, train=True)            -> vis_y, ir_y (B,1,H,W) in [0,1]
          train_crops(vis_y, ir_y, samples)    -> the same random crop (reflect padding) and
                                                  affine (nearest, fill 0) for VIS and IR,
                                                  drawn again while both are flat
                                                  (std < min_std)
          fuser(vis_y + noise, ir_y + noise)   -> fused_y, noise std input_noise_std
          term(fused_y, vis_y, ir_y)           -> loss_* per loss term (on the clean images)
        predict(inputs, data_samples)
          fuse(inputs)                         -> fused RGB (Y fused, Cb/Cr of VIS)
                                               -> pred_fused PixelData (3,h,w) in [0,1],
                                                  padding removed, not resized
        _forward(inputs)                       -> fused RGB (B,3,H,W) in [0,1]

    Args:
        fuser (dict | nn.Module): The single-channel fuser or its config,
            ``forward(vis_y, ir_y) -> fused_y``, e.g. ``dict(type='LDFusionNet')``.
        losses (dict | nn.Module | list): Fusion loss terms or their configs
            (:class:`~mmrisfusion.models.losses.BaseFusionLoss`), each
            ``term(fused_y, vis_y, ir_y)`` on luma in [0, 1] returning a scalar (logged as
            ``term.loss_name``) or a dict of ``loss_*`` scalars (e.g.
            ``CLIPLanguageLoss(return_terms=True)``, to log its parts).
        input_noise_std (float): Std of the Gaussian noise added to both fuser inputs in
            training (the losses see the clean images). Defaults to 0.03.
        train_crop (dict, optional): Random training crops, torchvision's
            ``RandomCrop(size, pad_if_needed=True, padding_mode='reflect')`` then
            ``RandomAffine(degrees, translate, scale, shear)`` (nearest, fill 0): ``size``
            (224), ``degrees`` (5), ``translate`` ((0.0, 0.1): horizontal, vertical),
            ``scale`` ((1.0, 1.5)), ``shear`` (5), ``min_std`` (0.05), ``max_tries`` (10);
            the values in brackets are the published ones and the defaults of missing keys.
            A crop whose VIS and IR both have a std below ``min_std`` is drawn again; the
            published data set retries without bound, here at most ``max_tries`` draws.
            None trains on the whole (padded) batch. Defaults to None.
        train_vis_luma (str): The VIS luma the losses and the fuser see in training:
            'uint8', OpenCV's 8-bit Y of the 8-bit image (published), or 'float', the
            BT.601 luma of the float image (as at inference). Defaults to 'uint8'.
        vis_mean (Sequence[float]): Mean of the VIS normalisation (0..255 scale), the one the
            data preprocessor applies. Defaults to ImageNet's.
        vis_std (Sequence[float]): Std of the VIS normalisation (0..255 scale).
            Defaults to ImageNet's.
        ir_mean (Sequence[float]): Mean of the IR normalisation (0..255 scale).
            Defaults to ImageNet's.
        ir_std (Sequence[float]): Std of the IR normalisation (0..255 scale).
            Defaults to ImageNet's.
        data_preprocessor (dict, optional): Config of the data preprocessor, e.g.
            ``RISDataPreProcessor``. Defaults to None.
        init_cfg (dict | list[dict], optional): Initialisation config. Defaults to None.
    """

    CROP_DEFAULTS = dict(size=224, **PUBLISHED_AFFINE, min_std=0.05, max_tries=10)
    VIS_LUMAS = ('uint8', 'float')

    def __init__(self,
                 fuser: Union[ConfigType, nn.Module],
                 losses: Union[dict, nn.Module, Sequence[Union[dict, nn.Module]]],
                 input_noise_std: float = 0.03,
                 train_crop: OptConfigType = None,
                 train_vis_luma: str = 'uint8',
                 vis_mean: Sequence[float] = IMAGENET_MEAN_255,
                 vis_std: Sequence[float] = IMAGENET_STD_255,
                 ir_mean: Sequence[float] = IMAGENET_MEAN_255,
                 ir_std: Sequence[float] = IMAGENET_STD_255,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.fuser = build_module(fuser, 'FusionModel.fuser')
        self.losses = build_loss_terms(losses, 'FusionModel.losses')
        if not self.losses:
            raise ValueError('FusionModel needs at least one loss term in losses')
        self.input_noise_std = input_noise_std
        if train_crop is not None:
            unknown = set(train_crop) - set(self.CROP_DEFAULTS)
            if unknown:
                raise KeyError(f'train_crop has unknown keys {sorted(unknown)}; expected some '
                               f'of {sorted(self.CROP_DEFAULTS)}')
            train_crop = {**self.CROP_DEFAULTS, **train_crop}
        self.train_crop = train_crop
        if train_vis_luma not in self.VIS_LUMAS:
            raise ValueError(f'train_vis_luma must be one of {self.VIS_LUMAS}, got '
                             f'{train_vis_luma!r}')
        self.train_vis_luma = train_vis_luma
        # 0..1-scale statistics, as the colour helpers expect.
        self.register_buffer('vis_mean', torch.tensor(vis_mean) / 255.0, persistent=False)
        self.register_buffer('vis_std', torch.tensor(vis_std) / 255.0, persistent=False)
        self.register_buffer('ir_mean', torch.tensor(ir_mean) / 255.0, persistent=False)
        self.register_buffer('ir_std', torch.tensor(ir_std) / 255.0, persistent=False)

    def forward(self, inputs: dict, data_samples: OptSampleList = None,
                mode: str = 'tensor') -> Union[Dict[str, Tensor], SampleList, Tensor]:
        """Dispatch to :meth:`loss`, :meth:`predict` or :meth:`_forward` (mmengine contract).

        Args:
            inputs (dict): The preprocessor's dict with ``vis`` and ``ir``.
            data_samples (list[RISDataSample], optional): The samples. Defaults to None.
            mode (str): 'loss', 'predict' or 'tensor'. Defaults to 'tensor'.

        Returns:
            dict | list | Tensor: Losses, predicted samples, or fused RGB images.
        """
        if not isinstance(inputs, dict) or 'vis' not in inputs or 'ir' not in inputs:
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise KeyError(f"FusionModel expects inputs as a dict with keys 'vis' and 'ir' "
                           f'(what RISDataPreProcessor returns), got {got}')
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise ValueError(f"Invalid mode {mode!r}: expected 'loss', 'predict' or 'tensor'")

    def lumas(self, inputs: dict, train: bool = False) -> Tuple[Tensor, Tensor]:
        """VIS luma and IR intensity in [0, 1] from the normalised inputs.

        Args:
            inputs (dict): The preprocessor's dict.
            train (bool): Whether for training, where ``train_vis_luma`` applies.
                Defaults to False (the float luma).

        Returns:
            tuple[Tensor, Tensor]: ``vis_y``, ``ir_y``, each (B, 1, H, W).
        """
        vis = denormalize(inputs['vis'], self.vis_mean, self.vis_std)
        to_luma = rgb_to_luma_uint8 if train and self.train_vis_luma == 'uint8' else rgb_to_luma
        return (to_luma(vis),
                rgb_to_luma(denormalize(inputs['ir'], self.ir_mean, self.ir_std)))

    def train_crops(self, vis_y: Tensor, ir_y: Tensor,
                    data_samples: OptSampleList = None) -> Tuple[Tensor, Tensor]:
        """Cut one random crop per sample, the same for VIS and IR.

        Each crop lies in the sample's own image (its batch padding excluded), reflecting at
        its borders when the image is smaller than the crop, so images of different sizes in
        one batch are handled. All crops are drawn and cut at once on the device; a crop where
        both VIS and IR are nearly flat (std below ``min_std``) is drawn again, up to
        ``max_tries`` draws, with one host synchronisation per round of redraws.

        Args:
            vis_y (Tensor): (B, 1, H, W) VIS luma.
            ir_y (Tensor): (B, 1, H, W) IR.
            data_samples (list[RISDataSample], optional): For the padding of each sample.
                Defaults to None (no padding).

        Returns:
            tuple[Tensor, Tensor]: VIS and IR crops, each (B, 1, size, size).
        """
        cfg = self.train_crop
        pair = torch.cat([vis_y, ir_y], 1)
        batch, _, height, width = pair.shape
        boxes = []
        for index in range(batch):
            left, right, top, bottom = padding_of(
                data_samples[index].metainfo if data_samples else None)
            boxes.append((top, left, height - top - bottom, width - left - right))
        boxes = torch.tensor(boxes, dtype=torch.long, device=pair.device)

        def draw():
            return sample_affine_crops(batch, cfg['size'], boxes[:, 2], boxes[:, 3],
                                       cfg['degrees'], cfg['translate'], cfg['scale'],
                                       cfg['shear'], device=pair.device)

        crops = draw()
        out = cut_training_crops(pair, crops, boxes)
        for _ in range(cfg['max_tries'] - 1):
            flat = (out.flatten(2).std(2) < cfg['min_std']).all(1)
            if not flat.any():
                break
            crops = crops.select(flat, draw())
            out = cut_training_crops(pair, crops, boxes)
        return out[:, :1], out[:, 1:]

    def loss(self, inputs: dict, data_samples: OptSampleList = None) -> Dict[str, Tensor]:
        """The loss terms of the fused luma of noisy (cropped) inputs.

        Args:
            inputs (dict): The preprocessor's dict.
            data_samples (list[RISDataSample], optional): For the padding of each sample.
                Defaults to None.

        Returns:
            dict[str, Tensor]: ``loss_*`` values; their sum is the training loss.
        """
        vis_y, ir_y = self.lumas(inputs, train=True)
        if self.train_crop is not None:
            vis_y, ir_y = self.train_crops(vis_y, ir_y, data_samples)
        noise = self.input_noise_std
        fused_y = self.fuser(vis_y + noise * torch.randn_like(vis_y),
                             ir_y + noise * torch.randn_like(ir_y))
        return loss_terms_dict(self.losses, fused_y, vis_y, ir_y)

    def fuse(self, inputs: dict) -> Tensor:
        """Fused RGB images: the fuser's luma with the VIS chroma.

        Args:
            inputs (dict): The preprocessor's dict.

        Returns:
            Tensor: (B, 3, H, W) in [0, 1].
        """
        vis = denormalize(inputs['vis'], self.vis_mean, self.vis_std)
        ycbcr = rgb_to_ycbcr(vis)
        ir_y = rgb_to_luma(denormalize(inputs['ir'], self.ir_mean, self.ir_std))
        fused_y = self.fuser(ycbcr[:, :1], ir_y)
        return ycbcr_to_rgb(torch.cat([fused_y, ycbcr[:, 1:]], 1)).clamp(0.0, 1.0)

    def predict(self, inputs: dict, data_samples: OptSampleList = None) -> SampleList:
        """Fuse and attach the result to the samples.

        Args:
            inputs (dict): The preprocessor's dict.
            data_samples (list[RISDataSample], optional): Samples with metainfo. Defaults to
                None (new samples, no padding).

        Returns:
            list[RISDataSample]: Each with ``pred_fused`` (3, h, w) in [0, 1]: padding
            removed, at the network's resolution (not resized to ``ori_shape``), so it
            matches the packed source images that ``FusionMetric`` scores it against.
        """
        fused = self.fuse(inputs).float()  # float32 under autocast too, for the metrics
        if data_samples is None:
            data_samples = [RISDataSample() for _ in range(fused.shape[0])]
        for sample, image in zip(data_samples, fused):
            sample.pred_fused = PixelData(data=to_original_frame(image, sample.metainfo))
        return data_samples

    def _forward(self, inputs: dict, data_samples: OptSampleList = None) -> Tensor:
        """Fused RGB images without post-processing.

        Args:
            inputs (dict): The preprocessor's dict.
            data_samples (list[RISDataSample], optional): Unused. Defaults to None.

        Returns:
            Tensor: (B, 3, H, W) in [0, 1].
        """
        return self.fuse(inputs)
