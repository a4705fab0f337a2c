from typing import Mapping, Optional

from mmengine.structures import PixelData
from mmseg.structures import SegDataSample


def sample_name(meta: Optional[Mapping], index: Optional[int] = None) -> str:
    """A sample's name for error messages: its image name or path, else its batch position.

    Args:
        meta (Mapping, optional): The sample's metainfo (``sample.metainfo``, or the dict of
            ``sample.to_dict()`` that metrics receive).
        index (int, optional): The sample's position in its batch. Defaults to None.

    Returns:
        str: e.g. ``'00012.png'`` or ``'sample 3 of the batch'``.
    """
    meta = meta or {}
    fallback = 'a sample' if index is None else f'sample {index} of the batch'
    return str(meta.get('img_name', meta.get('img_path', fallback)))


class RISDataSample(SegDataSample):
    """A referring-segmentation sample: mmseg's segmentation fields plus text and fusion.

    Fields, beside those of :class:`SegDataSample` (``gt_sem_seg``, ``pred_sem_seg``,
    ``seg_logits``):

    - ``text`` (str): the referring expression.
    - ``token_ids`` / ``token_mask`` (LongTensor (T,)): the tokenised expression and its
      attention mask (1 for words, 0 for padding).
    - ``pred_fused`` (PixelData): the fused image, ``data`` of shape (3, H, W) in [0, 1].

    The image name and geometry (``img_name``, ``ori_shape``, ``img_shape``, ...) are
    metainfo, as in mmseg.
    """

    @property
    def text(self) -> str:
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f'text must be a str, got {type(value).__name__}')
        self.set_field(value, '_text', dtype=str)

    @text.deleter
    def text(self) -> None:
        del self._text

    @property
    def pred_fused(self) -> PixelData:
        return self._pred_fused

    @pred_fused.setter
    def pred_fused(self, value: PixelData) -> None:
        self.set_field(value, '_pred_fused', dtype=PixelData)

    @pred_fused.deleter
    def pred_fused(self) -> None:
        del self._pred_fused
