from .fusion_metrics import (
    FUSION_METRICS,
    average_gradient,
    compute_fusion_metrics,
    correlation_coefficient,
    entropy,
    imread_gray,
    mse,
    mutual_information,
    nabf,
    psnr,
    qabf,
    rgb_to_gray,
    scd,
    spatial_frequency,
    ssim,
    standard_deviation,
    vif,
)

__all__ = ['FUSION_METRICS', 'average_gradient', 'compute_fusion_metrics',
           'correlation_coefficient', 'entropy', 'imread_gray', 'mse', 'mutual_information',
           'nabf', 'psnr', 'qabf', 'rgb_to_gray', 'scd', 'spatial_frequency', 'ssim',
           'standard_deviation', 'vif']
