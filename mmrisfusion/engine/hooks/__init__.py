from .broadcast_buffers_hook import BroadcastBuffersHook
from .exact_resume_hook import ExactResumeHook
from .result_saver_hook import RISResultSaverHook
from .visualization_hook import RISVisualizationHook

__all__ = ['BroadcastBuffersHook', 'ExactResumeHook', 'RISResultSaverHook',
           'RISVisualizationHook']
