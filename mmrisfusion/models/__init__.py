from .backbones import *  # noqa: F401,F403
from .data_preprocessor import RISDataPreProcessor  # noqa: F401
from .decode_heads import *  # noqa: F401,F403
from .fusers import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .text_encoders import *  # noqa: F401,F403
