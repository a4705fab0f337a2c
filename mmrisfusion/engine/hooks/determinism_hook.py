"""Make mmengine's ``randomness=dict(deterministic=True)`` run on GPUs."""
import os

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmrisfusion.registry import HOOKS

#: cuBLAS needs a fixed workspace to be deterministic (CUDA >= 10.2); torch raises without it.
CUBLAS_WORKSPACE = ':4096:8'


@HOOKS.register_module()
class DeterminismHook(Hook):
    """Turn ``randomness.deterministic=True`` into a deterministic mode that trains on CUDA.

    mmengine implements ``deterministic=True`` with ``torch.use_deterministic_algorithms(
    True)``, which raises on CUDA as soon as an op without a deterministic kernel runs. Our
    models have such ops in their backward (docs/training.md#deterministic-runs): the
    bilinear ``interpolate`` of the decode head (and of LDFusion's CLIP input),
    ``grid_sample`` (LDFusion's CLIP patch crops), ``ReflectionPad2d`` and
    ``AdaptiveAvgPool2d`` (LDFusion's network). Before the run, when the runner is
    deterministic, this hook

    - keeps torch's deterministic algorithms on, with ``warn_only``: every op that has a
      deterministic kernel uses it (convolutions, embedding and index backward, scatter,
      cumsum, ...), and the few that have none warn once and stay non-deterministic, so the
      run is reproducible up to the summation order in their gradients;
    - sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless it is set (deterministic cuBLAS);
    - leaves cuDNN deterministic and its benchmark off, as mmengine set them.

    With ``warn_only=False`` it only adds the cuBLAS setting: mmengine's strict mode, which
    raises on the ops above. Nothing changes when the runner is not deterministic.

    Args:
        warn_only (bool): Warn instead of raising for ops without a deterministic kernel.
            Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, warn_only: bool = True) -> None:
        self.warn_only = warn_only

    def before_run(self, runner: Runner) -> None:
        """Apply the mode when ``runner.deterministic``.

        Args:
            runner (Runner): The runner.
        """
        if not runner.deterministic:
            return
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True, warn_only=self.warn_only)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        print_log(f'Deterministic mode: deterministic algorithms (warn_only={self.warn_only}), '
                  f'CUBLAS_WORKSPACE_CONFIG={os.environ["CUBLAS_WORKSPACE_CONFIG"]}',
                  logger='current')
