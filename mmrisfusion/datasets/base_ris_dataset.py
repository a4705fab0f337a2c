"""What the RIS and IVIF datasets share: clear errors for bad rows and ``skip_invalid``."""
import logging
from collections import Counter
from typing import Any, Dict, List, Optional

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log


class InvalidSampleError(ValueError):
    """A row of a dataset that cannot become a sample.

    The message always names where the row came from (``source``: file and row or line),
    the image name, and what was expected, so a user can find and fix it.

    Args:
        source (str): File and row or line, e.g. ``'mm_ris_test.parquet:row 17'``.
        img_name (str, optional): The row's image name, when known. Defaults to None.
        problem (str): What is wrong and what was expected. Defaults to ''.
    """

    def __init__(self, source: str, img_name: Optional[str] = None, problem: str = '') -> None:
        self.source = source
        self.img_name = img_name
        self.problem = problem
        name = f' (image_name={img_name!r})' if img_name is not None else ''
        super().__init__(f'{source}{name}: {problem}')

    def __reduce__(self):
        # keeps the error intact when a dataloader worker sends it to the main process
        return type(self), (self.source, self.img_name, self.problem)


# Usable but suspicious rows seen by this process, by kind (see warn_suspicious).
_SUSPICIOUS: Counter = Counter()


def warn_suspicious(kind: str, message: str) -> None:
    """Count a row that loads but most likely is not what was meant; log a kind's first one.

    Such rows (a mask with values other than 0/1/255, an expression the tokenizer only
    knows as unknown tokens, one image name for two images) are used as they are, as the
    published loader does; a warning per row would flood a training log, so each process
    logs the first of each kind and counts the rest. ``tools/dataset_converters/mm_ris.py
    check`` lists all of them.

    Args:
        kind (str): e.g. ``'mask_values'``.
        message (str): What is wrong with this row, naming it.
    """
    _SUSPICIOUS[kind] += 1
    if _SUSPICIOUS[kind] == 1:
        print_log(f'{message}. Further rows of this kind are counted, not logged '
                  '(mmrisfusion.datasets.suspicious_row_counts()); '
                  'tools/dataset_converters/mm_ris.py check lists them all.',
                  logger='current', level=logging.WARNING)


def suspicious_row_counts() -> Dict[str, int]:
    """Rows :func:`warn_suspicious` counted in this process, by kind."""
    return dict(_SUSPICIOUS)


class BaseRISDataset(BaseDataset):
    """A dataset whose rows may be invalid: raise by default, or log, count and skip.

    Checks that need no image decoding (missing columns or files, empty or non-string
    expressions, empty files) run when the annotation is loaded; invalid rows are then
    dropped before indexing. Checks that need decoding (undecodable bytes, mask or image
    sizes) run in the pipeline's loading transforms, which raise :class:`InvalidSampleError`.
    With ``skip_invalid=True`` a training dataset logs such a row, counts it in
    ``num_skipped`` (per process: each dataloader worker counts its own) and lets
    :class:`BaseDataset` draw another index. A test-mode dataset cannot drop a row at that
    point without silently changing what the metric averages over, so it raises even with
    ``skip_invalid=True``; run ``tools/dataset_converters/mm_ris.py check`` to list such rows.

    Args:
        skip_invalid (bool): Log and skip invalid rows instead of raising.
            Defaults to False.
        **kwargs: Arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self, skip_invalid: bool = False, **kwargs: Any) -> None:
        self.skip_invalid = skip_invalid
        self.skipped: List[str] = []
        self.num_skipped = 0
        super().__init__(**kwargs)

    def record_invalid(self, error: InvalidSampleError) -> None:
        """Raise ``error``, or log and record it when skipping invalid rows."""
        if not self.skip_invalid:
            raise error
        self.skipped.append(str(error))
        self.num_skipped += 1
        print_log(f'{type(self).__name__}: skipped invalid row {error} '
                  f'({self.num_skipped} skipped so far)', logger='current',
                  level=logging.WARNING)

    def require_samples(self, data_list: List[dict], where: str, expected: str) -> List[dict]:
        """``data_list``, or an error that says nothing valid is left, where, and why.

        Without it an empty list reaches mmengine, whose error (``need at least one array to
        concatenate``) names neither the file nor the rows that were skipped.

        Args:
            data_list (list[dict]): The valid samples read.
            where (str): The file or folder read.
            expected (str): What a sample should have been.

        Returns:
            list[dict]: ``data_list``, when not empty.
        """
        if data_list:
            return data_list
        skipped = (f'; {self.num_skipped} invalid row(s) or file(s) were skipped, listed in the '
                   'log above' if self.num_skipped else '')
        raise InvalidSampleError(where, None, f'no valid sample is left to read ({expected})'
                                 f'{skipped}')

    def prepare_data(self, idx: int) -> Any:
        """Run the pipeline on row ``idx``; None (skip) for an invalid row when allowed.

        Args:
            idx (int): Row index.

        Returns:
            Any: The pipeline's output, or None when the row was skipped.
        """
        try:
            return self.pipeline(self.get_data_info(idx))
        except InvalidSampleError as error:
            if self.test_mode and self.skip_invalid:
                raise InvalidSampleError(
                    error.source, error.img_name,
                    error.problem + '. Test-mode datasets do not skip rows at decode time '
                    '(the metric would silently cover fewer samples); fix or remove the row '
                    '(tools/dataset_converters/mm_ris.py check lists them)') from error
            self.record_invalid(error)
            return None
