from .result_saver_hook import RISResultSaverHook
from .visualization_hook import RISVisualizationHook

__all__ = ['RISResultSaverHook', 'RISVisualizationHook']
