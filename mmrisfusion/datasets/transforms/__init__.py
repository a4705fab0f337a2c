from .formatting import PackRISInputs
from .loading import LoadRISAnnotation, LoadRISImages, decode_image
from .text import TokenizeText, load_tokenizer
from .transforms import (
    RISPhotoMetricDistortion,
    RISRandomCrop,
    RISRandomFlip,
    RISResize,
    RISResizePad,
    resize_array,
    swap_direction_words,
)

__all__ = [
    'LoadRISImages', 'LoadRISAnnotation', 'RISResize', 'RISResizePad', 'RISRandomCrop',
    'RISRandomFlip', 'RISPhotoMetricDistortion', 'TokenizeText', 'PackRISInputs',
    'decode_image', 'load_tokenizer', 'resize_array', 'swap_direction_words'
]
