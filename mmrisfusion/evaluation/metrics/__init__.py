from .fusion_metric import FusionMetric
from .ris_metric import RISMetric

__all__ = ['FusionMetric', 'RISMetric']
