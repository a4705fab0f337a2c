from .base_ris_dataset import (
    BaseRISDataset,
    InvalidSampleError,
    suspicious_row_counts,
    warn_suspicious,
)
from .collate import ris_collate
from .folder_datasets import IVIFFolderDataset, RISFolderDataset
from .mm_ris import MMRISDataset, ParquetRowReader, arrow_cache_file, parquet_files
from .mm_ris_format import MM_RIS_COLUMNS, MMRISParquetWriter, mm_ris_schema
from .synthetic_mmris import SyntheticMMRIS, make_synthetic_mmris, make_synthetic_splits
from .transforms import (
    LoadRISAnnotation,
    LoadRISImages,
    PackRISInputs,
    RISPhotoMetricDistortion,
    RISRandomCrop,
    RISRandomFlip,
    RISResize,
    RISResizePad,
    TokenizeText,
    decode_image,
    load_tokenizer,
    resize_array,
    swap_direction_words,
)
from .wrappers import MismatchedTextDataset

__all__ = [
    'BaseRISDataset', 'InvalidSampleError', 'MMRISDataset', 'MismatchedTextDataset',
    'RISFolderDataset', 'IVIFFolderDataset', 'ParquetRowReader', 'arrow_cache_file',
    'parquet_files',
    'MM_RIS_COLUMNS', 'MMRISParquetWriter',
    'SyntheticMMRIS', 'make_synthetic_mmris', 'make_synthetic_splits', 'mm_ris_schema',
    'LoadRISImages', 'LoadRISAnnotation', 'RISResize', 'RISResizePad', 'RISRandomCrop',
    'RISRandomFlip', 'RISPhotoMetricDistortion', 'TokenizeText', 'PackRISInputs',
    'decode_image', 'load_tokenizer', 'resize_array', 'ris_collate', 'suspicious_row_counts',
    'swap_direction_words', 'warn_suspicious'
]
