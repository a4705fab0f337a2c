"""Test-time augmentation for referring segmentation: the mean of the views' predictions."""
from typing import List

import torch
from mmengine.model import BaseTTAModel
from mmengine.structures import PixelData

from mmrisfusion.registry import MODELS
from mmrisfusion.structures import RISDataSample

from ..utils.predictions import class_argmax


@MODELS.register_module()
class RISTTAModel(BaseTTAModel):
    """Average a :class:`RISFusion`'s predictions over the views of ``tta_pipeline``.

    ``tools/test.py --tta`` wraps the config's model in ``tta_model`` and reads the test
    set through ``tta_pipeline``, whose ``TestTimeAug`` makes the views of each sample;
    the shipped ones are the sample as it is and flipped horizontally with its side words
    swapped ("the leftmost dog" -> "the rightmost dog", as the training flip does), so the
    expression stays true. The wrapped model maps each view's logits and fused image back to
    the original frame; this averages the class probabilities (softmax of the logits) and
    the fused images over the views, and takes the argmax. The first view's sample (the
    unaugmented one in the shipped pipelines) carries the result with its ground truth and
    metainfo; its ``seg_logits`` become the log of the mean probabilities.

    Args:
        module (dict | nn.Module): The model (a :class:`RISFusion`).
        data_preprocessor (dict | nn.Module, optional): Unused: each view goes through the
            module's own preprocessor. Defaults to None.
    """

    def merge_preds(self, data_samples_list: List[List[RISDataSample]]
                    ) -> List[RISDataSample]:
        """Merge the views of each sample into one prediction.

        Args:
            data_samples_list (list[list[RISDataSample]]): For each sample, its views'
                predictions (``seg_logits``, ``pred_sem_seg``, ``pred_fused``), in the
                original frame.

        Returns:
            list[RISDataSample]: One sample per input sample.
        """
        merged = []
        for views in data_samples_list:
            probs = torch.stack([view.seg_logits.data.float().softmax(0)
                                 for view in views]).mean(0)
            sample = views[0]
            sample.set_data(dict(seg_logits=PixelData(data=probs.log()),
                                 pred_sem_seg=PixelData(data=class_argmax(probs, 0,
                                                                          keepdim=True))))
            if all('pred_fused' in view for view in views):
                sample.pred_fused = PixelData(data=torch.stack(
                    [view.pred_fused.data for view in views]).mean(0))
            merged.append(sample)
        return merged
