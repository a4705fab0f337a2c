from mmengine.structures import PixelData
from mmseg.structures import SegDataSample


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
