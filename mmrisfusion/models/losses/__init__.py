from .clip_losses import (
    CLIPLanguageLoss,
    directional_cosines,
    directional_loss,
    image_entropy,
    similarity_loss,
)
from .cross_entropy_loss import WeightedCrossEntropyLoss
from .dice_loss import TwoClassDiceLoss
from .fusion_losses import (
    JointGradientLoss,
    LumaMSELoss,
    SobelL1Loss,
    SSIMLoss,
    fusion_luma,
    sobel_magnitudes,
)
from .loss_term import (
    BaseFusionLoss,
    BaseLossTerm,
    build_loss_terms,
    check_loss_name,
    loss_terms_dict,
)
from .perceptual import PerceptualMaxLoss, vgg19_features
from .side_swap_loss import SideSwapLoss

__all__ = [
    'BaseFusionLoss', 'BaseLossTerm', 'build_loss_terms', 'check_loss_name', 'loss_terms_dict',
    'JointGradientLoss', 'LumaMSELoss', 'SobelL1Loss', 'SSIMLoss', 'TwoClassDiceLoss',
    'WeightedCrossEntropyLoss', 'fusion_luma', 'sobel_magnitudes',
    'CLIPLanguageLoss', 'PerceptualMaxLoss', 'directional_cosines', 'directional_loss',
    'image_entropy', 'similarity_loss', 'vgg19_features', 'SideSwapLoss'
]
