from typing import List, Union

import numpy as np
from mmengine.dataset import BaseDataset

from mmrisfusion.registry import DATASETS


@DATASETS.register_module()
class MismatchedTextDataset:
    """The same samples, each with the expression of a sample from another image.

    This measures how much the text drives the mask, which RIS-FUSION argues for but does not
    report: evaluated next to the unchanged dataset (e.g. in a ``ConcatDataset``) with
    ``RISMetric(text_sensitivity=True)``, it gives the mismatched-text mIoU and the drop. The
    permutation is fixed by ``seed`` and never pairs two rows of the same image, so every
    borrowed expression describes another scene. Each sample carries ``text_permuted=True``
    (metainfo, through ``PackRISInputs``).

    Args:
        dataset (dict | BaseDataset): The dataset to wrap (a config or an instance).
        seed (int): Seed of the permutation. Defaults to 0.
        lazy_init (bool): Postpone building the wrapped dataset's list and the permutation
            until first use. Defaults to False.
    """

    def __init__(self, dataset: Union[dict, BaseDataset], seed: int = 0,
                 lazy_init: bool = False) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.seed = seed
        self._permutation: List[int] = []
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def full_init(self) -> None:
        """Build the wrapped dataset's list and the permutation."""
        if self._permutation:
            return
        self.dataset.full_init()
        names = [BaseDataset.get_data_info(self.dataset, i)['img_name']
                 for i in range(len(self.dataset))]
        self._permutation = self._derangement_across_images(names, self.seed)

    @staticmethod
    def _derangement_across_images(names: List[str], seed: int) -> List[int]:
        """A permutation p with names[p[i]] != names[i] for every i.

        Rows of one image are laid out contiguously in a random order of images; shifting
        that layout by the largest group's size sends every row to another image whenever
        no image holds half of the rows or more.
        """
        groups: dict = {}
        for index, name in enumerate(names):
            groups.setdefault(name, []).append(index)
        largest = max((len(rows) for rows in groups.values()), default=0)
        if 2 * largest > len(names):
            raise ValueError(
                f'MismatchedTextDataset: {largest} of the {len(names)} rows show one image; '
                'a permutation that gives every row the expression of another image needs '
                'every image to hold less than half of the rows')
        rng = np.random.default_rng(seed)
        order = [index for key in rng.permutation(sorted(groups)) for index in groups[key]]
        permutation = [0] * len(names)
        for position, index in enumerate(order):
            permutation[index] = order[(position + largest) % len(order)]
        return permutation

    def __len__(self) -> int:
        self.full_init()
        return len(self._permutation)

    def __getitem__(self, idx: int) -> dict:
        self.full_init()
        info = self.dataset.get_data_info(idx)
        donor = BaseDataset.get_data_info(self.dataset, self._permutation[idx])
        info['text'] = donor['text']
        info['text_permuted'] = True
        return self.dataset.pipeline(info)
