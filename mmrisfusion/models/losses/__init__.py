from .cross_entropy_loss import WeightedCrossEntropyLoss
from .dice_loss import TwoClassDiceLoss
from .fusion_losses import (JointGradientLoss, LumaMSELoss, SobelL1Loss, SSIMLoss,
                            fusion_luma, sobel_magnitudes)

__all__ = [
    'JointGradientLoss', 'LumaMSELoss', 'SobelL1Loss', 'SSIMLoss', 'TwoClassDiceLoss',
    'WeightedCrossEntropyLoss', 'fusion_luma', 'sobel_magnitudes'
]
