from .fusion_metric import FusionMetric
from .ris_metric import RISMetric, mask_iou

__all__ = ['FusionMetric', 'RISMetric', 'mask_iou']
