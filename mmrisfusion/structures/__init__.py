from .batch import batch_input
from .ris_data_sample import RISDataSample, sample_name
from .sample_geometry import FLIP_AXES, crop_to, padding_of, to_original_frame, undo_flip, unpad

__all__ = [
    'FLIP_AXES', 'RISDataSample', 'batch_input', 'crop_to', 'padding_of', 'sample_name',
    'to_original_frame', 'undo_flip', 'unpad'
]
