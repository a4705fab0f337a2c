"""LDFusion's MUNIT-style fusion network (docs/ldfusion.md#network).

Each modality has a content encoder (spatial features) and a style encoder (a global code).
The decoder reads both contents, concatenated, and is modulated by both styles through AdaIN
residual blocks whose parameters come from an MLP, then upsamples back to full resolution.
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrisfusion.registry import MODELS

#: Where the oversized decoder output is cut to the input size.
OUTPUT_CROPS = ('top_left', 'center')


class ConvBlock(nn.Module):
    """Convolution, optional instance norm, optional ReLU (MUNIT's block).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel side.
        stride (int): Stride. Defaults to 1.
        padding (int): Padding on each side. Defaults to 0.
        padding_mode (str): 'reflect' or 'zeros' (``nn.Conv2d``'s modes). Defaults to
            'reflect'.
        norm (bool): Whether to apply instance normalisation (no affine). Defaults to False.
        relu (bool): Whether to end with a ReLU. Defaults to True.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, padding_mode: str = 'reflect', norm: bool = False,
                 relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              padding_mode=padding_mode)
        self.norm = nn.InstanceNorm2d(out_channels) if norm else nn.Identity()
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        return self.act(self.norm(self.conv(x)))


class ResBlock(nn.Module):
    """``x + conv-IN-ReLU-conv-IN(x)`` with 3x3 reflect-padded convolutions.

    Args:
        channels (int): Channels in and out.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(ConvBlock(channels, channels, 3, 1, 1, norm=True),
                                   ConvBlock(channels, channels, 3, 1, 1, norm=True,
                                             relu=False))

    def forward(self, x: Tensor) -> Tensor:
        """Apply the residual block."""
        return x + self.block(x)


class AdaINResBlock(nn.Module):
    """Residual block whose two instance norms take per-sample scale and shift (AdaIN).

    Args:
        channels (int): Channels in and out.
    """

    num_norms = 2

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = ConvBlock(channels, channels, 3, 1, 1, relu=False)
        self.conv2 = ConvBlock(channels, channels, 3, 1, 1, relu=False)

    @staticmethod
    def adain(x: Tensor, params: Tensor) -> Tensor:
        """Instance-normalise ``x`` and apply ``params = [mean (C), std (C)]`` per sample."""
        channels = x.shape[1]
        mean, std = params[:, :channels], params[:, channels:2 * channels]
        return F.instance_norm(x, eps=1e-5) * std[..., None, None] + mean[..., None, None]

    def forward(self, x: Tensor, params: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x (Tensor): ``(B, C, h, w)`` features.
            params (Tensor): ``(B, 4C)``: mean and std of the first norm, then of the second.

        Returns:
            Tensor: ``(B, C, h, w)``.
        """
        c2 = 2 * self.channels
        out = F.relu(self.adain(self.conv1(x), params[:, :c2]))
        out = self.adain(self.conv2(out), params[:, c2:2 * c2])
        return x + out


class SampleLayerNorm(nn.Module):
    """MUNIT's layer norm: per-sample mean and (unbiased) std over C, H, W, per-channel affine.

    Args:
        channels (int): Channels (size of the affine parameters).
        eps (float): Added to the std. Defaults to 1e-5.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.empty(channels).uniform_())
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape ``(B, C, H, W)``."""
        flat = x.flatten(1)
        mean = flat.mean(1).view(-1, 1, 1, 1)
        std = flat.std(1).view(-1, 1, 1, 1)
        x = (x - mean) / (std + self.eps)
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


class ModalityEncoder(nn.Module):
    """Content and style encoders of one single-channel modality.

    The 7x7 and residual convolutions pad by reflection, the stride-2 convolutions with zeros,
    as published.

    Args:
        base_channels (int): Width after the first conv. Defaults to 16.
        num_downsample (int): Stride-2 convs of each path. Defaults to 3.
        num_res (int): Residual blocks of the content path. Defaults to 2.
        style_channels (int): Style width cap (the style path stops doubling here).
            Defaults to 64.
        style_dim (int): Length of the style code. Defaults to 8.
    """

    def __init__(self, base_channels: int = 16, num_downsample: int = 3, num_res: int = 2,
                 style_channels: int = 64, style_dim: int = 8) -> None:
        super().__init__()
        layers: List[nn.Module] = [ConvBlock(1, base_channels, 7, 1, 3, norm=True)]
        dim = base_channels
        for _ in range(num_downsample):
            layers.append(ConvBlock(dim, 2 * dim, 4, 2, 1, padding_mode='zeros', norm=True))
            dim *= 2
        layers += [ResBlock(dim) for _ in range(num_res)]
        self.content = nn.Sequential(*layers)
        self.content_channels = dim

        style: List[nn.Module] = [ConvBlock(1, base_channels, 7, 1, 3)]
        dim = base_channels
        for _ in range(num_downsample):
            out = min(2 * dim, style_channels)
            style.append(ConvBlock(dim, out, 4, 2, 1, padding_mode='zeros'))
            dim = out
        style += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, style_dim, 1)]
        self.style = nn.Sequential(*style)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Return ``(content (B, C, H/8, W/8), style (B, style_dim))``."""
        return self.content(x), self.style(x).flatten(1)


@MODELS.register_module()
class LDFusionNet(nn.Module):
    """LDFusion's fusion network: per-modality content/style encoders and an AdaIN decoder.

    ``forward(vis_y, ir_y) -> fused_y``: single-channel images in [0, 1] (VIS luma and IR) to
    the fused luma in [0, 1]. The colour image is recomposed outside (Cb/Cr from VIS, see
    ``FusionModel``). With the defaults (docs/ldfusion.md#network): contents of 128 channels
    at 1/8 resolution, styles of 8, a decoder on 256 channels with 2 AdaIN residual blocks
    driven by an MLP 16 -> 256 -> 256 -> 2048, three ``ConvTranspose2d(k5, s2, p0)`` + layer
    norm + ReLU upsamplings (256 -> 128 -> 64 -> 32), reflect-pad 3 + conv7 to one channel,
    tanh and a clamp to [0, 1].

    The transposed convolutions overshoot (``2h + 3`` per step: a side ``H`` comes back as
    ``8 floor(H / 8) + 21``), so the output is cut to the input size. As published, the cut
    keeps the top-left corner (``output_crop='top_left'``); ``'center'`` keeps the centre
    instead, where the upsampled grid lines up with the input. Published weights reproduce
    published outputs only with the top-left cut.

    Weights load from the published ``Enc_final.pt`` / ``Dec_final.pt`` pair through
    ``tools/model_converters/ldfusion_official.py``.

    Args:
        base_channels (int): Width of the first encoder conv. Defaults to 16.
        num_downsample (int): Downsamplings of the encoders, upsamplings of the decoder.
            Defaults to 3.
        num_res (int): Residual blocks in each content encoder and AdaIN blocks in the
            decoder. Defaults to 2.
        style_channels (int): Style encoder width cap. Defaults to 64.
        style_dim (int): Style code length per modality. Defaults to 8.
        mlp_channels (int): Hidden width of the AdaIN parameter MLP. Defaults to 256.
        init_std (float): Standard deviation of the normal init of conv and transposed-conv
            weights; their biases keep PyTorch's default init, as published. Defaults to 0.02.
        output_crop (str): 'top_left' (published) or 'center'. Defaults to 'top_left'.
    """

    def __init__(self, base_channels: int = 16, num_downsample: int = 3, num_res: int = 2,
                 style_channels: int = 64, style_dim: int = 8, mlp_channels: int = 256,
                 init_std: float = 0.02, output_crop: str = 'top_left') -> None:
        super().__init__()
        if output_crop not in OUTPUT_CROPS:
            raise ValueError(f'output_crop must be one of {OUTPUT_CROPS}, got {output_crop!r}')
        self.output_crop = output_crop
        self.vis_encoder = ModalityEncoder(base_channels, num_downsample, num_res,
                                           style_channels, style_dim)
        self.ir_encoder = ModalityEncoder(base_channels, num_downsample, num_res,
                                          style_channels, style_dim)
        dim = 2 * self.vis_encoder.content_channels
        self.adain_blocks = nn.ModuleList(AdaINResBlock(dim) for _ in range(num_res))
        self.num_adain_params = num_res * AdaINResBlock.num_norms * 2 * dim
        self.mlp = nn.Sequential(nn.Linear(2 * style_dim, mlp_channels), nn.ReLU(),
                                 nn.Linear(mlp_channels, mlp_channels), nn.ReLU(),
                                 nn.Linear(mlp_channels, self.num_adain_params))
        ups: List[nn.Module] = []
        for _ in range(num_downsample):
            ups += [nn.ConvTranspose2d(dim, dim // 2, 5, 2, 0), SampleLayerNorm(dim // 2),
                    nn.ReLU()]
            dim //= 2
        self.upsample = nn.Sequential(*ups)
        self.head = ConvBlock(dim, 1, 7, 1, 3, relu=False)
        self.init_weights(init_std)

    def init_weights(self, std: float = 0.02) -> None:
        """Normal ``N(0, std)`` conv and transposed-conv weights, as published.

        Their biases, the linear layers and the layer norms keep PyTorch's default init.

        Args:
            std (float): Standard deviation. Defaults to 0.02.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, std)

    def encode(self, vis_y: Tensor, ir_y: Tensor) -> Tuple[Tensor, Tensor]:
        """Contents and styles of both modalities.

        Args:
            vis_y (Tensor): ``(B, 1, H, W)`` VIS luma in [0, 1].
            ir_y (Tensor): ``(B, 1, H, W)`` IR in [0, 1].

        Returns:
            tuple[Tensor, Tensor]: The contents concatenated (VIS first), ``(B, 2C, h, w)``,
            and the styles concatenated (VIS first), ``(B, 2 style_dim)``.
        """
        if vis_y.dim() != 4 or vis_y.shape[1] != 1 or vis_y.shape != ir_y.shape:
            raise ValueError('LDFusionNet takes (B, 1, H, W) VIS luma and IR of the same '
                             f'shape, got {tuple(vis_y.shape)} and {tuple(ir_y.shape)}')
        content_v, style_v = self.vis_encoder(vis_y)
        content_i, style_i = self.ir_encoder(ir_y)
        return torch.cat([content_v, content_i], 1), torch.cat([style_v, style_i], 1)

    def decode(self, content: Tensor, style: Tensor) -> Tensor:
        """The decoder's full output, before the cut to the input size.

        Args:
            content (Tensor): ``(B, 2C, h, w)`` from :meth:`encode`.
            style (Tensor): ``(B, 2 style_dim)`` from :meth:`encode`.

        Returns:
            Tensor: ``(B, 1, H', W')`` in [0, 1]; each upsampling maps a side ``h`` to
            ``2h + 3`` (``8h + 21`` after the published three).
        """
        params = self.mlp(style)
        step = params.shape[1] // len(self.adain_blocks) if len(self.adain_blocks) else 0
        x = content
        for index, block in enumerate(self.adain_blocks):
            x = block(x, params[:, index * step:(index + 1) * step])
        return torch.tanh(self.head(self.upsample(x))).clamp(0.0, 1.0)

    def forward(self, vis_y: Tensor, ir_y: Tensor) -> Tensor:
        """Fuse VIS luma and IR.

        Args:
            vis_y (Tensor): ``(B, 1, H, W)`` VIS luma in [0, 1].
            ir_y (Tensor): ``(B, 1, H, W)`` IR in [0, 1].

        Returns:
            Tensor: ``(B, 1, H, W)`` fused luma in [0, 1].
        """
        out = self.decode(*self.encode(vis_y, ir_y))
        height, width = vis_y.shape[-2:]
        top = left = 0
        if self.output_crop == 'center':
            top = (out.shape[-2] - height) // 2
            left = (out.shape[-1] - width) // 2
        return out[..., top:top + height, left:left + width]
