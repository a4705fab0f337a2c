"""The local visualiser of RIS-fusion results."""
from typing import Optional

import cv2
import numpy as np
from mmengine.dist import master_only
from mmengine.visualization import Visualizer

from mmrisfusion.registry import VISUALIZERS
from mmrisfusion.structures import RISDataSample

from .draw import ArrayLike, draw_ris_panel


def _field(data_sample: Optional[RISDataSample], name: str) -> Optional[object]:
    """A data field of ``data_sample`` or None, for samples that lack it (fusion-only)."""
    if data_sample is None:
        return None
    return getattr(data_sample, name, None)


@VISUALIZERS.register_module()
class RISLocalVisualizer(Visualizer):
    """Draws (VIS, IR, fused, prediction, GT) panels captioned with the expression.

    mmseg's ``SegLocalVisualizer`` paints one image with a class palette; a referring
    fusion sample has two inputs, a fused output and one binary mask per expression, so the
    picture that explains a result is a row of tiles with the text underneath (see
    :func:`draw_ris_panel`). The panel goes to every configured backend (``LocalVisBackend``
    writes ``{save_dir}/vis_data/vis_image/{name}_{step}.png``; ``TensorboardVisBackend``
    logs it as an image), to a window with ``show=True``, or to ``out_file``.

    Args:
        name (str): Instance name (``Visualizer.get_instance`` key). Defaults to
            'visualizer'.
        image (np.ndarray, optional): An image to set, as in mmengine. Defaults to None.
        vis_backends (list[dict], optional): Backend configs. Defaults to None.
        save_dir (str, optional): Root folder of the backends. Defaults to None.
        fig_save_cfg (dict, optional): Matplotlib figure options for saving, as in
            mmengine. Defaults to None (``dict(frameon=False)``).
        fig_show_cfg (dict, optional): Matplotlib figure options for showing. Defaults to
            None (``dict(frameon=False)``).
    """

    def __init__(self, name: str = 'visualizer', image: Optional[np.ndarray] = None,
                 vis_backends: Optional[list] = None, save_dir: Optional[str] = None,
                 fig_save_cfg: Optional[dict] = None,
                 fig_show_cfg: Optional[dict] = None) -> None:
        super().__init__(name=name, image=image, vis_backends=vis_backends, save_dir=save_dir,
                         fig_save_cfg=fig_save_cfg or dict(frameon=False),
                         fig_show_cfg=fig_show_cfg or dict(frameon=False))

    def draw_sample(self, image: ArrayLike, ir: ArrayLike,
                    data_sample: Optional[RISDataSample] = None, draw_gt: bool = True,
                    draw_pred: bool = True) -> np.ndarray:
        """Draw the panel of one sample without sending it anywhere.

        Args:
            image (np.ndarray | torch.Tensor): The visible image (RGB; an (H, W, 3) array or
                a (3, H, W) tensor).
            ir (np.ndarray | torch.Tensor): The infrared image (1 or 3 channels).
            data_sample (RISDataSample, optional): Supplies ``pred_fused``,
                ``pred_sem_seg``, ``gt_sem_seg`` and ``text`` where present. Defaults to
                None.
            draw_gt (bool): Whether to draw the ground-truth tile. Defaults to True.
            draw_pred (bool): Whether to draw the fused and prediction tiles. Defaults to
                True.

        Returns:
            np.ndarray: ``(H', W', 3)`` uint8 RGB panel.
        """
        fused = _field(data_sample, 'pred_fused') if draw_pred else None
        pred = _field(data_sample, 'pred_sem_seg') if draw_pred else None
        gt = _field(data_sample, 'gt_sem_seg') if draw_gt else None
        return draw_ris_panel(
            image, ir,
            fused=None if fused is None else fused.data,
            pred_mask=None if pred is None else pred.data,
            gt_mask=None if gt is None else gt.data,
            text=_field(data_sample, 'text'))

    @master_only
    def add_datasample(self, name: str, image: ArrayLike,
                       data_sample: Optional[RISDataSample] = None, draw_gt: bool = True,
                       draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: Optional[str] = None, step: int = 0,
                       ir: Optional[ArrayLike] = None) -> None:
        """Draw a sample's panel and record it (backends), show it or write it to a file.

        Args:
            name (str): Image identifier in the backends and window title.
            image (np.ndarray | torch.Tensor): The visible image.
            data_sample (RISDataSample, optional): The predicted (and GT) sample. Defaults
                to None.
            draw_gt (bool): Whether to draw the ground truth. Defaults to True.
            draw_pred (bool): Whether to draw the fused image and prediction. Defaults to
                True.
            show (bool): Whether to show the panel in a window instead of recording it.
                Defaults to False.
            wait_time (float): Seconds the window stays open. Defaults to 0.
            out_file (str, optional): Write the panel to this file instead of the
                backends. Defaults to None.
            step (int): Global step recorded with the image. Defaults to 0.
            ir (np.ndarray | torch.Tensor, optional): The infrared image; required (keyword
                only to keep mmengine's signature). Defaults to None.
        """
        if ir is None:
            raise ValueError(f'RISLocalVisualizer.add_datasample({name!r}) needs the infrared '
                             'image: pass ir=...')
        panel = self.draw_sample(image, ir, data_sample, draw_gt=draw_gt, draw_pred=draw_pred)
        if show:
            self.show(panel, win_name=name, wait_time=wait_time)
        if out_file is not None:
            if not cv2.imwrite(out_file, cv2.cvtColor(panel, cv2.COLOR_RGB2BGR)):
                raise OSError(f'could not write the panel to {out_file}')
        elif not show:
            self.add_image(name, panel, step)
