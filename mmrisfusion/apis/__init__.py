from .inference import RISResult, inference_model, init_model, load_model_checkpoint
from .model_zoo import get_model, list_models

__all__ = ['RISResult', 'get_model', 'inference_model', 'init_model', 'list_models',
           'load_model_checkpoint']
