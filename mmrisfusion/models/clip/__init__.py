from .encoders import (FrozenCLIPEncoder, HFCLIPEncoder, OpenCLIPEncoder, build_clip_encoder,
                       load_openai_clip_state_dict)
from .frozen import FrozenNet

__all__ = ['FrozenCLIPEncoder', 'FrozenNet', 'HFCLIPEncoder', 'OpenCLIPEncoder',
           'build_clip_encoder', 'load_openai_clip_state_dict']
