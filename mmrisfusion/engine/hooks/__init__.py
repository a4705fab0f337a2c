from .broadcast_buffers_hook import BroadcastBuffersHook
from .determinism_hook import DeterminismHook
from .exact_resume_hook import ExactResumeHook
from .result_saver_hook import RISResultSaverHook
from .visualization_hook import RISVisualizationHook

__all__ = ['BroadcastBuffersHook', 'DeterminismHook', 'ExactResumeHook', 'RISResultSaverHook',
           'RISVisualizationHook']
