from .determinism_hook import DeterminismHook
from .result_saver_hook import RISResultSaverHook
from .visualization_hook import RISVisualizationHook

__all__ = ['DeterminismHook', 'RISResultSaverHook', 'RISVisualizationHook']
