"""Type aliases shared across the package (the same names as mmseg's)."""
from mmseg.utils import (
    ConfigType,
    ForwardResults,
    MultiConfig,
    OptConfigType,
    OptMultiConfig,
    OptSampleList,
    SampleList,
)

__all__ = ['ConfigType', 'ForwardResults', 'MultiConfig', 'OptConfigType',
           'OptMultiConfig', 'OptSampleList', 'SampleList']
