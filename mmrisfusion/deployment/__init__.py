"""Deployment outside PyTorch: ONNX export of RIS-FUSION (``tools/deployment/pytorch2onnx.py``)."""
from .onnx_export import (
    DEFAULT_TOLERANCE,
    INPUT_NAMES,
    OUTPUT_NAMES,
    ExportCheckError,
    RISFusionForExport,
    UnsupportedConfigError,
    example_inputs,
    export_onnx,
    float32_noise,
    max_abs_diff,
    onnx_session,
    preprocessing_spec,
)

__all__ = ['DEFAULT_TOLERANCE', 'INPUT_NAMES', 'OUTPUT_NAMES', 'ExportCheckError',
           'RISFusionForExport', 'UnsupportedConfigError', 'example_inputs', 'export_onnx',
           'float32_noise', 'max_abs_diff', 'onnx_session', 'preprocessing_spec']
