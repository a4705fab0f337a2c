"""The MM-RIS parquet dataset, read lazily and without copying image bytes per worker."""
import bisect
import glob
import logging
import os
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.logging import print_log

from mmrisfusion.registry import DATASETS
from .base_ris_dataset import BaseRISDataset, InvalidSampleError

#: Official column -> (key of ``get_data_info``, Arrow type family).
TEXT_COLUMNS = {'image_name': 'img_name', 'question': 'text'}
BYTES_COLUMNS = {'visible_image': 'vis_bytes', 'infrared_image': 'ir_bytes',
                 'segmentation': 'seg_bytes'}
REQUIRED_COLUMNS = ('image_name', 'visible_image', 'infrared_image', 'question', 'segmentation')
# Row groups larger than this make every random read decode many rows' images.
LARGE_ROW_GROUP = 512


def parquet_files(path: str) -> List[str]:
    """``path`` itself, or the sorted ``*.parquet`` of the folder ``path``.

    The official train split ships as two parts that are read as one split by concatenating
    their rows in file-name order.

    Args:
        path (str): A parquet file or a folder of them.

    Returns:
        list[str]: The files, in reading order.
    """
    if osp.isdir(path):
        files = sorted(glob.glob(osp.join(path, '*.parquet')))
        if not files:
            raise FileNotFoundError(f'MM-RIS: the folder {path!r} holds no *.parquet file')
        return files
    if not osp.isfile(path):
        raise FileNotFoundError(f'MM-RIS: {path!r} is neither a parquet file nor a folder '
                                'of them (the official splits are mm_ris_train.parquet, '
                                'mm_ris_val.parquet and mm_ris_test.parquet)')
    return [path]


def _import_pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ImportError('MM-RIS parquet files need pyarrow: pip install pyarrow') from error
    return pq


class ParquetRowReader:
    """Random access to single rows of parquet files, one row group at a time.

    Parquet can only be decoded by row group, so a read decodes the row group that holds the
    row and keeps the last ``cache_size`` of them (an LRU), which makes sequential reads
    cheap and bounds memory: at most ``cache_size`` row groups of the requested columns per
    process. Files are memory-mapped, so pages are shared through the OS page cache rather
    than copied. Each process opens its own handles (see :meth:`MMRISDataset._reader`).

    Args:
        files (Sequence[str]): Parquet files.
        columns (Sequence[str]): Columns to read.
        cache_size (int): Row groups kept per process. Defaults to 2.
    """

    def __init__(self, files: Sequence[str], columns: Sequence[str], cache_size: int = 2) -> None:
        pq = _import_pyarrow()
        self.columns = list(columns)
        self.cache_size = max(1, cache_size)
        self._files = [pq.ParquetFile(f, memory_map=True) for f in files]
        # first row of every row group, per file
        self._starts = []
        for pf in self._files:
            starts, total = [], 0
            for i in range(pf.metadata.num_row_groups):
                starts.append(total)
                total += pf.metadata.row_group(i).num_rows
            self._starts.append(starts)
        self._cache: 'OrderedDict[Tuple[int, int], Any]' = OrderedDict()

    def read(self, file_idx: int, row: int) -> Dict[str, Any]:
        """The requested columns of row ``row`` of file ``file_idx``.

        Args:
            file_idx (int): Index into ``files``.
            row (int): Row within that file.

        Returns:
            dict: Column -> Python value (``bytes`` for binary columns, None for nulls).
        """
        starts = self._starts[file_idx]
        group = bisect.bisect_right(starts, row) - 1
        key = (file_idx, group)
        table = self._cache.get(key)
        if table is None:
            table = self._files[file_idx].read_row_group(group, columns=self.columns,
                                                         use_threads=False)
            self._cache[key] = table
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        offset = row - starts[group]
        return {name: table.column(name)[offset].as_py() for name in self.columns}


@DATASETS.register_module()
class MMRISDataset(BaseRISDataset):
    """MM-RIS in its official parquet format: IR/VIS pairs, expressions and masks.

    Reads a parquet file, or a folder whose ``*.parquet`` files are concatenated in name
    order (the official train split ships in two parts). Columns: ``image_name`` (str),
    ``visible_image`` and ``infrared_image`` (encoded PNG/JPEG bytes), ``question`` (the
    referring expression) and ``segmentation`` (the bytes of a ``.npy`` HxW array,
    foreground = value > 0). Byte columns stored in Hugging Face's image layout (a struct
    with ``bytes`` and ``path``) are read too.

    Opening reads only the two string columns; the data list (what mmengine serialises and
    shares with the dataloader workers) holds names, expressions and row positions, never
    image bytes. :meth:`get_data_info` reads a row's bytes on demand through a per-process
    :class:`ParquetRowReader`; images are decoded by the pipeline (``LoadRISImages``,
    ``LoadRISAnnotation``).

    Validation at opening: missing files, an empty file, missing columns or columns of the
    wrong type, and null, non-string or empty ``image_name``/``question``. The published
    loader silently drops rows with nulls; here they raise, or are logged, counted and
    dropped with ``skip_invalid=True``. Null image or mask bytes and undecodable or
    mis-sized content are found when the row is loaded (see :class:`BaseRISDataset`).

    Args:
        data_path (str): A parquet file or a folder of them, relative to ``data_root``.
            Defaults to ''.
        data_root (str): Root folder joined to ``data_path``. Defaults to ''.
        row_group_cache (int): Row groups each process keeps decoded. Defaults to 2.
        skip_invalid (bool): Log, count and drop invalid rows instead of raising.
            Defaults to False.
        metainfo (dict, optional): Overrides of :attr:`METAINFO`. Defaults to None.
        pipeline (list): Transforms. Defaults to None, meaning [].
        test_mode (bool): Whether this is a val/test set. Defaults to False.
        lazy_init (bool): Defer reading the files until first use. Defaults to False.
        serialize_data (bool): Serialise the data list for sharing with workers.
            Defaults to True.
        indices (int | Sequence[int], optional): Use only these rows. Defaults to None.
        max_refetch (int): Redraws after a skipped training row. Defaults to 1000.
    """

    METAINFO = dict(classes=('background', 'object'), palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self,
                 data_path: str = '',
                 data_root: str = '',
                 row_group_cache: int = 2,
                 skip_invalid: bool = False,
                 metainfo: Optional[dict] = None,
                 pipeline: Optional[List[Any]] = None,
                 test_mode: bool = False,
                 lazy_init: bool = False,
                 serialize_data: bool = True,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 max_refetch: int = 1000) -> None:
        self.data_path = data_path
        self.row_group_cache = row_group_cache
        self.files: List[str] = []
        self._reader_cache: Optional[Tuple[int, ParquetRowReader]] = None
        super().__init__(
            skip_invalid=skip_invalid, ann_file='', metainfo=metainfo, data_root=data_root,
            data_prefix=dict(), pipeline=pipeline or [], test_mode=test_mode,
            lazy_init=lazy_init, serialize_data=serialize_data, indices=indices,
            max_refetch=max_refetch)

    @property
    def full_data_path(self) -> str:
        """``data_path`` joined to ``data_root``."""
        return osp.join(self.data_root or '', self.data_path)

    def _check_schema(self, path: str, schema: Any) -> None:
        """Raise for a missing column or a column of the wrong type."""
        import pyarrow as pa
        missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
        if missing:
            raise InvalidSampleError(
                path, None, f'missing column(s) {missing}; an MM-RIS parquet file has the '
                f'columns {list(REQUIRED_COLUMNS)} (found {schema.names})')
        for name in TEXT_COLUMNS:
            typ = schema.field(name).type
            if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
                raise InvalidSampleError(path, None, f'column {name!r} has type {typ}; '
                                         'expected strings')
        for name in BYTES_COLUMNS:
            typ = schema.field(name).type
            if pa.types.is_struct(typ) and typ.get_field_index('bytes') >= 0:
                typ = typ.field('bytes').type  # Hugging Face's Image layout {bytes, path}
            if not (pa.types.is_binary(typ) or pa.types.is_large_binary(typ)):
                raise InvalidSampleError(path, None, f'column {name!r} has type {typ}; '
                                         'expected binary (encoded image or .npy bytes)')

    def load_data_list(self) -> List[dict]:
        """Read names and expressions of every row and validate them (no image bytes).

        Returns:
            list[dict]: ``img_name``, ``text``, ``source``, ``file_idx``, ``row_idx``.
        """
        pq = _import_pyarrow()
        self.files = parquet_files(self.full_data_path)
        data_list = []
        for file_idx, path in enumerate(self.files):
            base = osp.basename(path)
            if osp.getsize(path) == 0:
                self.record_invalid(InvalidSampleError(
                    path, None, 'the file is empty (0 bytes); expected a parquet file of '
                    'MM-RIS rows'))
                continue
            try:
                pf = pq.ParquetFile(path, memory_map=True)
            except Exception as error:  # pyarrow raises several types for corrupt files
                self.record_invalid(InvalidSampleError(
                    path, None, f'not a readable parquet file ({error})'))
                continue
            try:
                self._check_schema(path, pf.schema_arrow)
                if pf.metadata.num_rows == 0:
                    raise InvalidSampleError(path, None, 'the file holds no rows; expected '
                                             'MM-RIS rows')
            except InvalidSampleError as error:
                self.record_invalid(error)
                continue
            largest = max(pf.metadata.row_group(i).num_rows
                          for i in range(pf.metadata.num_row_groups))
            if largest > LARGE_ROW_GROUP:
                print_log(f'MMRISDataset: {path} has row groups of up to {largest} rows; '
                          'every random read decodes a whole row group. Rewrite it with '
                          'small row groups for fast training: python '
                          'tools/dataset_converters/mm_ris.py rechunk IN OUT',
                          logger='current', level=logging.WARNING)
            table = pf.read(columns=list(TEXT_COLUMNS), use_threads=False)
            names = table.column('image_name').to_pylist()
            texts = table.column('question').to_pylist()
            for row, (name, text) in enumerate(zip(names, texts)):
                source = f'{base}:row {row}'
                problem = None
                if not isinstance(name, str) or not name.strip():
                    problem = f'image_name is {name!r}; expected a non-empty string'
                elif not isinstance(text, str) or not text.strip():
                    problem = f'question is {text!r}; expected a non-empty string'
                if problem is not None:
                    self.record_invalid(InvalidSampleError(source, name, problem))
                    continue
                data_list.append(dict(img_name=name, text=text, source=source,
                                      file_idx=file_idx, row_idx=row))
        if not data_list and not self.skip_invalid:
            raise InvalidSampleError(self.full_data_path, None, 'no rows')
        return data_list

    def _reader(self) -> ParquetRowReader:
        """This process's reader: opened on first use, again after a fork."""
        pid = os.getpid()
        if self._reader_cache is None or self._reader_cache[0] != pid:
            self._reader_cache = (pid, ParquetRowReader(self.files, list(BYTES_COLUMNS),
                                                        self.row_group_cache))
        return self._reader_cache[1]

    def get_data_info(self, idx: int) -> dict:
        """Row ``idx`` with its encoded bytes: what ``LoadRISImages`` and
        ``LoadRISAnnotation`` decode.

        Args:
            idx (int): Row index in this dataset.

        Returns:
            dict: ``img_name``, ``text``, ``source``, ``sample_idx``, ``vis_bytes``,
            ``ir_bytes``, ``seg_bytes`` (and the row position).
        """
        info = super().get_data_info(idx)
        row = self._reader().read(info['file_idx'], info['row_idx'])
        for column, key in BYTES_COLUMNS.items():
            if isinstance(row[column], dict):  # Hugging Face's Image layout {bytes, path}
                row[column] = row[column].get('bytes')
            if row[column] is None:
                raise InvalidSampleError(info['source'], info['img_name'],
                                         f'{column} is null; expected encoded bytes')
            info[key] = row[column]
        return info

    def __getstate__(self) -> dict:
        # open file handles do not travel to spawned workers; they reopen on first use
        state = self.__dict__.copy()
        state['_reader_cache'] = None
        return state
