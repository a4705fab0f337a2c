from .draw import draw_ris_panel, make_panel, overlay_mask
from .ris_visualizer import RISLocalVisualizer

__all__ = ['RISLocalVisualizer', 'draw_ris_panel', 'make_panel', 'overlay_mask']
