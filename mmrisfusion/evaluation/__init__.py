from .functional import FUSION_METRICS, compute_fusion_metrics, imread_gray, rgb_to_gray
from .metrics import FusionMetric, RISMetric, mask_iou

__all__ = ['FUSION_METRICS', 'FusionMetric', 'RISMetric', 'compute_fusion_metrics',
           'imread_gray', 'mask_iou', 'rgb_to_gray']
