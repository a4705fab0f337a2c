from .inference import (
    PairInferencer,
    RISResult,
    inference_model,
    inference_pipeline,
    init_model,
    load_model_checkpoint,
)
from .model_zoo import get_model, list_models

__all__ = ['PairInferencer', 'RISResult', 'get_model', 'inference_model', 'inference_pipeline',
           'init_model', 'list_models', 'load_model_checkpoint']
