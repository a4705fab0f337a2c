"""Validation panels: what the model fused and segmented for a few samples, with the text."""
from pathlib import Path
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.visualization import Visualizer

from mmrisfusion.registry import HOOKS
from mmrisfusion.structures import RISDataSample, batch_input
from mmrisfusion.visualization import RISLocalVisualizer


@HOOKS.register_module()
class RISVisualizationHook(Hook):
    """Record (VIS, IR, fused, prediction, GT) panels captioned with the expression.

    mmseg's ``SegVisualizationHook`` re-reads the image from ``img_path``; MM-RIS samples
    come from parquet bytes and have two inputs, so the panels are drawn from the batch's
    own uint8 inputs (the network's view) and the predicted sample. At most ``max_samples``
    panels are recorded per evaluation, each tagged ``{mode}_{index}_{image name}`` at the
    current training iteration, so TensorBoard shows how the same samples evolve.

    The runner's visualiser must be an :class:`RISLocalVisualizer` (config key
    ``visualizer.type``); its backends decide where the panels go (``LocalVisBackend``:
    ``{work_dir}/{timestamp}/vis_data/vis_image/``; ``TensorboardVisBackend``: the event
    file).

    Args:
        draw (bool): Whether to draw at all. Defaults to True.
        interval (int): Draw from every ``interval``-th batch. Defaults to 1.
        max_samples (int): Panels per validation (or test) run. Defaults to 4.
        draw_test (bool): Whether to draw during ``runner.test()`` as well. Defaults to
            False.
        show (bool): Show panels in a window instead of recording them. Defaults to False.
        wait_time (float): Seconds a shown panel stays. Defaults to 0.
    """

    def __init__(self, draw: bool = True, interval: int = 1, max_samples: int = 4,
                 draw_test: bool = False, show: bool = False, wait_time: float = 0.) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if max_samples < 0:
            raise ValueError(f'max_samples must be >= 0, got {max_samples}')
        self.draw = draw
        self.interval = interval
        self.max_samples = max_samples
        self.draw_test = draw_test
        self.show = show
        self.wait_time = wait_time
        self._drawn = 0

    @staticmethod
    def _visualizer() -> RISLocalVisualizer:
        """The runner's visualiser, checked once it is needed."""
        visualizer = Visualizer.get_current_instance()
        if not isinstance(visualizer, RISLocalVisualizer):
            raise TypeError('RISVisualizationHook draws through an RISLocalVisualizer, but the '
                            f'current visualiser is {type(visualizer).__name__}: set '
                            "visualizer = dict(type='RISLocalVisualizer', ...) in the config")
        return visualizer

    def before_val_epoch(self, runner: Runner) -> None:
        """Start a new evaluation's panel budget."""
        self._drawn = 0

    def before_test_epoch(self, runner: Runner) -> None:
        """Start a new test run's panel budget."""
        self._drawn = 0

    def _after_iter(self, runner: Runner, batch_idx: int, data_batch: Optional[dict] = None,
                    outputs: Optional[Sequence[RISDataSample]] = None,
                    mode: str = 'train') -> None:
        """Draw the batch's samples while the budget lasts (val, and test if asked)."""
        if (not self.draw or mode == 'train' or (mode == 'test' and not self.draw_test)
                or self._drawn >= self.max_samples or not outputs or data_batch is None
                or not self.every_n_inner_iters(batch_idx, self.interval)):
            return
        visualizer = self._visualizer()
        inputs = data_batch['inputs']
        for index, sample in enumerate(outputs):
            if self._drawn >= self.max_samples:
                break
            vis = batch_input(inputs, 'vis', index)
            ir = batch_input(inputs, 'ir', index)
            if vis is None or ir is None:
                found = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
                raise KeyError("RISVisualizationHook needs data_batch['inputs'] with 'vis' "
                               f"and 'ir' images; got {found}")
            name = Path(str(sample.metainfo.get('img_name', f'sample{index}'))).stem
            visualizer.add_datasample(
                f'{mode}_{self._drawn}_{name}', vis, data_sample=sample, ir=ir,
                show=self.show, wait_time=self.wait_time, step=runner.iter)
            self._drawn += 1
