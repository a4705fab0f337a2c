from ..utils.frozen import FrozenNet  # moved to models/utils; kept importable here
from .encoders import (
    FrozenCLIPEncoder,
    HFCLIPEncoder,
    OpenCLIPEncoder,
    build_clip_encoder,
    load_openai_clip_state_dict,
)

__all__ = ['FrozenCLIPEncoder', 'FrozenNet', 'HFCLIPEncoder', 'OpenCLIPEncoder',
           'build_clip_encoder', 'load_openai_clip_state_dict']
