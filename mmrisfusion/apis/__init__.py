from .inference import RISResult, inference_model, init_model, load_model_checkpoint

__all__ = ['RISResult', 'inference_model', 'init_model', 'load_model_checkpoint']
