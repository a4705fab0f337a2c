"""The MM-RIS parquet dataset, read lazily and without copying image bytes per worker."""
import bisect
import glob
import hashlib
import logging
import os
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from mmengine.logging import print_log

from mmrisfusion.registry import DATASETS

from .base_ris_dataset import BaseRISDataset, InvalidSampleError, warn_suspicious
from .mm_ris_format import MM_RIS_COLUMNS

#: Official column -> (key of ``get_data_info``, Arrow type family).
TEXT_COLUMNS = {'image_name': 'img_name', 'question': 'text'}
BYTES_COLUMNS = {'visible_image': 'vis_bytes', 'infrared_image': 'ir_bytes',
                 'segmentation': 'seg_bytes'}
# Row groups larger than this make every random read decode many rows' images.
LARGE_ROW_GROUP = 512


#: Characters that make a ``data_path`` entry a glob pattern.
_GLOB_CHARS = '*?['


def _entry_files(entry: str) -> List[str]:
    """The parquet files one ``data_path`` entry names: a file, a folder or a pattern."""
    if any(char in entry for char in _GLOB_CHARS):
        files = sorted(path for path in glob.glob(entry) if osp.isfile(path))
        if not files:
            folder = osp.dirname(entry) or '.'
            found = sorted(osp.basename(path) for path in glob.glob(osp.join(folder, '*.parquet')))
            raise FileNotFoundError(
                f'MM-RIS: no file matches {entry!r} ({folder!r} holds '
                f'{found or "no *.parquet file"}); the official train split ships as '
                'mm_ris_train_part1.parquet and mm_ris_train_part2.parquet')
        return files
    if osp.isdir(entry):
        files = sorted(glob.glob(osp.join(entry, '*.parquet')))
        if not files:
            raise FileNotFoundError(f'MM-RIS: the folder {entry!r} holds no *.parquet file')
        return files
    if not osp.isfile(entry):
        raise FileNotFoundError(f'MM-RIS: {entry!r} is neither a parquet file, a folder of them '
                                'nor a pattern matching them (the official splits are '
                                'mm_ris_train_part{1,2}.parquet, mm_ris_val.parquet and '
                                'mm_ris_test.parquet)')
    return [entry]


def parquet_files(paths: Union[str, Sequence[str]]) -> List[str]:
    """The parquet files of one split, in reading order.

    Each entry is a parquet file, a folder (its ``*.parquet``, in name order) or a glob
    pattern (its matches, in name order); a list reads its entries in the given order and
    the rows of all files are concatenated. The official train split ships as two parts,
    read as one split with ``'mm_ris_train_part*.parquet'``. No file may be named twice:
    its rows would be trained on twice.

    Args:
        paths (str | Sequence[str]): One entry or a list of them.

    Returns:
        list[str]: The files, in reading order.

    Raises:
        FileNotFoundError: When an entry names nothing.
        ValueError: When the list is empty or names a file more than once.
    """
    entries = [paths] if isinstance(paths, str) else list(paths)
    if not entries:
        raise ValueError('MM-RIS: data_path is an empty list; give a parquet file, a folder, '
                         'a pattern or a list of them')
    files = [path for entry in entries for path in _entry_files(entry)]
    real = [osp.realpath(path) for path in files]
    repeated = sorted({path for path, key in zip(files, real) if real.count(key) > 1})
    if repeated:
        raise ValueError(f'MM-RIS: data_path {entries} names {repeated} more than once; each '
                         'file of a split must be read once')
    return files


def _import_pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ImportError('MM-RIS parquet files need pyarrow: pip install pyarrow') from error
    return pq


def arrow_cache_file(path: str, cache_dir: str) -> str:
    """The memory-mappable Arrow IPC copy of the parquet file ``path`` in ``cache_dir``.

    Written once (streamed batch by batch, so memory stays bounded even for a file stored as
    one huge row group), named after the file's absolute path, size and modification time
    so a changed file gets a new copy, and renamed into place atomically.

    Args:
        path (str): The parquet file.
        cache_dir (str): Where the copies live (created if missing).

    Returns:
        str: The ``.arrow`` file.
    """
    import pyarrow as pa
    pq = _import_pyarrow()
    stat = os.stat(path)
    key = f'{osp.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}'
    name = f'{osp.splitext(osp.basename(path))[0]}-{hashlib.sha1(key.encode()).hexdigest()[:12]}'
    target = osp.join(cache_dir, name + '.arrow')
    if osp.isfile(target):
        return target
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f'{target}.{os.getpid()}.tmp'
    pf = pq.ParquetFile(path, memory_map=True)
    with pa.OSFile(tmp, 'wb') as sink, \
            pa.ipc.new_file(sink, pa.schema([pf.schema_arrow.field(c)
                                              for c in BYTES_COLUMNS])) as writer:
        for batch in pf.iter_batches(batch_size=64, columns=list(BYTES_COLUMNS),
                                     use_threads=False):
            writer.write_batch(batch)
    os.replace(tmp, target)
    return target


class ParquetRowReader:
    """Random access to single rows of parquet files (or of their Arrow IPC copies).

    Parquet can only be decoded by row group, so a read decodes the row group that holds the
    row and keeps the last ``cache_size`` of them (an LRU): sequential reads are cheap and
    memory is bounded by ``cache_size`` row groups of the requested columns per process.
    A file given as an Arrow IPC copy (``.arrow``, see :func:`arrow_cache_file`) is read
    without decoding anything: its memory-mapped record batches are views into the page
    cache, shared by every process, and one row costs the same whatever the row groups.
    Each process opens its own handles (see :meth:`MMRISDataset._reader`).

    Args:
        files (Sequence[str]): Parquet files, or ``.arrow`` IPC copies of them.
        columns (Sequence[str]): Columns to read.
        cache_size (int): Parquet row groups kept per process. Defaults to 2.
    """

    def __init__(self, files: Sequence[str], columns: Sequence[str], cache_size: int = 2) -> None:
        import pyarrow as pa
        pq = _import_pyarrow()
        self.columns = list(columns)
        self.cache_size = max(1, cache_size)
        self._files: List[Any] = []
        self._starts: List[List[int]] = []  # first row of every row group / batch, per file
        for path in files:
            if path.endswith('.arrow'):
                reader = pa.ipc.open_file(pa.memory_map(path, 'r'))
                batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
                sizes = [b.num_rows for b in batches]
                self._files.append(batches)
            else:
                pf = pq.ParquetFile(path, memory_map=True)
                sizes = [pf.metadata.row_group(i).num_rows
                         for i in range(pf.metadata.num_row_groups)]
                self._files.append(pf)
            self._starts.append([sum(sizes[:i]) for i in range(len(sizes))])
        self._cache: 'OrderedDict[Tuple[int, int], Any]' = OrderedDict()

    def _group(self, file_idx: int, group: int) -> Any:
        source = self._files[file_idx]
        if isinstance(source, list):  # memory-mapped IPC batches: nothing to decode
            return source[group]
        key = (file_idx, group)
        table = self._cache.get(key)
        if table is None:
            table = source.read_row_group(group, columns=self.columns, use_threads=False)
            self._cache[key] = table
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return table

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
        table = self._group(file_idx, group)
        offset = row - starts[group]
        return {name: table.column(name)[offset].as_py() for name in self.columns}


def _one_line(error: Exception) -> str:
    """An error's message on one line (pyarrow's span several)."""
    return ' '.join(str(error).split())


def _decode_text_row(name: Optional[bytes], text: Optional[bytes]
                     ) -> Tuple[Optional[str], Any, Any]:
    """(problem or None, image_name, question) of one row's string columns read as bytes."""
    values = []
    for column, value in zip(TEXT_COLUMNS, (name, text)):
        if isinstance(value, bytes):
            try:
                value = value.decode('utf-8')
            except UnicodeDecodeError as error:
                return (f'{column} is not UTF-8 text ({error.reason} at byte {error.start} of '
                        f'{value[:40]!r}); expected a UTF-8 string'), None, None
        values.append(value)
    name, text = values
    if not isinstance(name, str) or not name.strip():
        return f'image_name is {name!r}; expected a non-empty string', name, text
    if not isinstance(text, str) or not text.strip():
        return f'question is {text!r}; expected a non-empty string', name, text
    return None, name, text


@DATASETS.register_module()
class MMRISDataset(BaseRISDataset):
    """MM-RIS in its official parquet format: IR/VIS pairs, expressions and masks.

    Reads a parquet file, the ``*.parquet`` files of a folder or the matches of a glob
    pattern (each in name order), or a list of those (in the given order), and concatenates
    their rows: the official train split ships in two parts, read as one split with
    ``data_path='mm_ris_train_part*.parquet'`` (see :func:`parquet_files`). Columns:
    ``image_name`` (str), ``visible_image`` and ``infrared_image`` (encoded PNG/JPEG bytes),
    ``question`` (the referring expression) and ``segmentation`` (the bytes of a ``.npy`` HxW
    array, foreground = value > 0). Byte columns stored in Hugging Face's image layout (a struct
    with ``bytes`` and ``path``) are read too.

    Opening reads only the two string columns; the data list (what mmengine serialises and
    shares with the dataloader workers) holds names, expressions and row positions, never
    image bytes. :meth:`get_data_info` reads a row's bytes on demand through a per-process
    :class:`ParquetRowReader`; images are decoded by the pipeline (``LoadRISImages``,
    ``LoadRISAnnotation``).

    Validation at opening: missing files, an empty file, missing columns or columns of the
    wrong type, a damaged row group of the string columns, and null, non-UTF-8 or empty
    ``image_name``/``question``. The published loader silently drops rows with nulls; here
    they raise, or are logged, counted and dropped with ``skip_invalid=True``; when nothing
    valid is left, the error says so. Rows that repeat an earlier row's image name and
    expression are kept with one warning that counts them. Null image or mask bytes, damaged
    pages, oversized and undecodable or mis-sized content are found when the row is loaded
    (see :class:`BaseRISDataset`), and so are suspicious rows that are used with a warning
    (see :func:`~mmrisfusion.datasets.warn_suspicious`): an image name seen before with
    other image bytes, mask values other than 0/1/255.

    Args:
        data_path (str | Sequence[str]): A parquet file, a folder of them, a glob pattern
            or a list of those, each relative to ``data_root``. Defaults to ''.
        data_root (str): Root folder joined to ``data_path``. Defaults to ''.
        row_group_cache (int): Parquet row groups each process keeps decoded.
            Defaults to 2.
        cache_dir (str, optional): Read through memory-mapped Arrow IPC copies of the
            parquet files kept in this folder (written on first use, reused after): every
            row then costs the same to read, whatever the files' row groups, and no process
            decodes more than the row it reads. Worth it for files with large row groups
            (the published files may hold few) and for many workers. Defaults to None
            (read the parquet row groups directly).
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
                 data_path: Union[str, Sequence[str]] = '',
                 data_root: str = '',
                 row_group_cache: int = 2,
                 cache_dir: Optional[str] = None,
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
        self.cache_dir = cache_dir
        self.files: List[str] = []  # the valid parquet files, in reading order
        self.read_files: List[str] = []  # what the readers open: the files or their copies
        self._reader_cache: Optional[Tuple[int, ParquetRowReader]] = None
        # image_name -> (digest of its VIS+IR bytes, first row), of the rows this process read
        self._image_digests: Dict[str, Tuple[bytes, str]] = {}
        super().__init__(
            skip_invalid=skip_invalid, ann_file='', metainfo=metainfo, data_root=data_root,
            data_prefix=dict(), pipeline=pipeline or [], test_mode=test_mode,
            lazy_init=lazy_init, serialize_data=serialize_data, indices=indices,
            max_refetch=max_refetch)

    @property
    def full_data_path(self) -> Union[str, List[str]]:
        """``data_path`` (each entry of a list) joined to ``data_root``."""
        if isinstance(self.data_path, str):
            return osp.join(self.data_root or '', self.data_path)
        return [osp.join(self.data_root or '', path) for path in self.data_path]

    def _check_schema(self, path: str, schema: Any) -> None:
        """Raise for a missing column or a column of the wrong type."""
        import pyarrow as pa
        missing = [c for c in MM_RIS_COLUMNS if c not in schema.names]
        if missing:
            raise InvalidSampleError(
                path, None, f'missing column(s) {missing}; an MM-RIS parquet file has the '
                f'columns {list(MM_RIS_COLUMNS)} (found {schema.names})')
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
        self.files, self.read_files = [], []
        data_list = []
        for path in parquet_files(self.full_data_path):
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
            if largest > LARGE_ROW_GROUP and self.cache_dir is None:
                print_log(f'MMRISDataset: {path} has row groups of up to {largest} rows; '
                          'every random read decodes a whole row group. Set cache_dir (a '
                          'memory-mapped Arrow copy) or rewrite the file with small row '
                          'groups: python tools/dataset_converters/mm_ris.py rechunk IN OUT',
                          logger='current', level=logging.WARNING)
            file_idx = len(self.files)
            self.files.append(path)
            self.read_files.append(self._read_file(path))
            for row, name, text in self._text_rows(pf, path):
                data_list.append(dict(img_name=name, text=text, source=f'{base}:row {row}',
                                      file_idx=file_idx, row_idx=row))
        self.require_samples(data_list, self.full_data_path, 'expected MM-RIS rows')
        self._warn_repeated_rows(data_list)
        return data_list

    def _read_file(self, path: str) -> str:
        """What the readers open for ``path``: its Arrow copy with ``cache_dir``, else itself.

        A file that cannot be copied (a damaged page) is read directly, so that only its
        damaged rows fail, each with its own error.
        """
        if self.cache_dir is None:
            return path
        import pyarrow as pa
        try:
            return arrow_cache_file(path, self.cache_dir)
        except (OSError, pa.ArrowException) as error:
            print_log(f'MMRISDataset: {path} cannot be copied to the Arrow cache '
                      f'({_one_line(error)}); '
                      'reading it directly: the rows it cannot read will fail one by one',
                      logger='current', level=logging.WARNING)
            return path

    def _text_rows(self, pf: Any, path: str) -> Iterator[Tuple[int, str, str]]:
        """(row, image_name, question) of the valid rows of one file, row group by row group.

        The strings are read as bytes and decoded here, so a value that is not UTF-8 is one
        invalid row (pyarrow would fail the whole file), and a damaged row group invalidates
        its rows, not the file.
        """
        import pyarrow as pa
        base = osp.basename(path)
        start = 0
        for group in range(pf.metadata.num_row_groups):
            size = pf.metadata.row_group(group).num_rows
            try:
                table = pf.read_row_group(group, columns=list(TEXT_COLUMNS), use_threads=False)
                names, texts = (table.column(c).cast(pa.binary()).to_pylist()
                                for c in TEXT_COLUMNS)
            except (OSError, pa.ArrowException) as error:
                for row in range(start, start + size):
                    self.record_invalid(InvalidSampleError(
                        f'{base}:row {row}', None, f'row group {group} (rows {start}-'
                        f'{start + size - 1}) cannot be read ({_one_line(error)}); the file is '
                        'damaged: download or convert it again'))
                start += size
                continue
            for row, (name, text) in enumerate(zip(names, texts), start):
                problem, name, text = _decode_text_row(name, text)
                if problem is None:
                    yield row, name, text
                else:
                    self.record_invalid(InvalidSampleError(f'{base}:row {row}', name, problem))
            start += size

    def _warn_repeated_rows(self, data_list: List[dict]) -> None:
        """Warn once, with the count, about rows that repeat an earlier (image, expression).

        A repeated row is scored twice by a test split (or is one expression for two
        objects); ``tools/dataset_converters/mm_ris.py check`` tells exact duplicates apart.
        """
        first: Dict[Tuple[str, str], str] = {}
        repeats = []
        for info in data_list:
            key = (info['img_name'], info['text'])
            if key in first:
                repeats.append(f'{info["source"]} repeats {first[key]}')
            else:
                first[key] = info['source']
        if repeats:
            examples = '; '.join(repeats[:3]) + ('; ...' if len(repeats) > 3 else '')
            print_log(f'MMRISDataset: {len(repeats)} row(s) of {self.full_data_path} repeat the '
                      f'image_name and question of an earlier row ({examples}); a test split '
                      'scores each of them again. tools/dataset_converters/mm_ris.py check '
                      'lists exact duplicates', logger='current', level=logging.WARNING)

    def _reader(self) -> ParquetRowReader:
        """This process's reader: opened on first use, again after a fork."""
        pid = os.getpid()
        if self._reader_cache is None or self._reader_cache[0] != pid:
            self._reader_cache = (pid, ParquetRowReader(self.read_files, list(BYTES_COLUMNS),
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
        import pyarrow as pa
        info = super().get_data_info(idx)
        try:
            row = self._reader().read(info['file_idx'], info['row_idx'])
        except (OSError, pa.ArrowException) as error:
            raise InvalidSampleError(info['source'], info['img_name'], f'the row cannot be read '
                                     f'({_one_line(error)}); the file is damaged: download or '
                                     'convert it again') from error
        for column, key in BYTES_COLUMNS.items():
            if isinstance(row[column], dict):  # Hugging Face's Image layout {bytes, path}
                row[column] = row[column].get('bytes')
            if row[column] is None:
                raise InvalidSampleError(info['source'], info['img_name'],
                                         f'{column} is null; expected encoded bytes')
            info[key] = row[column]
        self._check_one_image_per_name(info)
        return info

    def _check_one_image_per_name(self, info: dict) -> None:
        """Warn when an image_name read before came with other image bytes (this process)."""
        digest = hashlib.sha1(info['vis_bytes'] + info['ir_bytes']).digest()
        first = self._image_digests.setdefault(info['img_name'], (digest, info['source']))
        if first[0] != digest:
            warn_suspicious('image_name_reused', f'{info["source"]} (image_name='
                            f'{info["img_name"]!r}) has other image bytes than {first[1]} of '
                            'the same name; expected one image per name (masks and results '
                            'are written by name)')

    def __getstate__(self) -> dict:
        # open file handles do not travel to spawned workers; they reopen on first use
        state = self.__dict__.copy()
        state['_reader_cache'] = None
        return state
