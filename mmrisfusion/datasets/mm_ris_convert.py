"""MM-RIS parquet <-> image folders, re-chunking and checking (``tools/dataset_converters``).

Image bytes are copied as they are (never re-encoded); masks become PNGs (0/255) in the
folder layout and ``.npy`` uint8 arrays (0/1) in parquet, so a round trip keeps images
byte-identical and masks' foreground (value > 0) identical.
"""
import hashlib
import json
import logging
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from .base_ris_dataset import InvalidSampleError
from .folder_datasets import RISFolderDataset
from .mm_ris import MMRISDataset, parquet_files
from .mm_ris_format import MM_RIS_COLUMNS, MMRISParquetWriter, encode_npy
from .transforms.loading import MAX_PIXELS, load_npy_mask, unexpected_mask_values

_MAGIC = ((b'\x89PNG', '.png'), (b'\xff\xd8', '.jpg'), (b'BM', '.bmp'),
          (b'II*\x00', '.tif'), (b'MM\x00*', '.tif'))


def _image_file_name(name: str, data: bytes) -> str:
    """``name``, with the extension of its format appended when it has none."""
    if osp.splitext(name)[1]:
        return name
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return name + ext
    return name + '.png'


def parquet_to_folder(src: str, out_dir: str, ann_name: str = 'refs.jsonl',
                      skip_invalid: bool = False) -> Dict[str, int]:
    """Write MM-RIS parquet as ``vi/``, ``ir/``, ``mask/`` and a JSON-lines file.

    Rows of one image with the same mask are one referred object (one JSON line with all
    its expressions); each object's mask is ``mask/<stem>_<k>.png``.

    Args:
        src (str): A parquet file, a folder of them or a glob pattern.
        out_dir (str): Output folder (created).
        ann_name (str): Name of the JSON-lines file. Defaults to 'refs.jsonl'.
        skip_invalid (bool): Skip rows that fail the dataset's checks. Defaults to False.

    Returns:
        dict: Counts of ``images``, ``objects`` and ``expressions`` written.
    """
    dataset = MMRISDataset(src, skip_invalid=skip_invalid, serialize_data=False)
    for sub in ('vi', 'ir', 'mask'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    images: Dict[str, Tuple[str, str]] = {}  # image_name -> (file name, bytes digest)
    objects: Dict[Tuple[str, str], dict] = {}  # (image_name, mask digest) -> JSON line
    per_image: Dict[str, int] = {}
    for idx in range(len(dataset)):
        try:
            info = dataset.get_data_info(idx)
        except InvalidSampleError as error:
            dataset.record_invalid(error)
            continue
        name = info['img_name']
        digest = hashlib.sha1(info['vis_bytes'] + info['ir_bytes']).hexdigest()
        if name not in images:
            file_name = _image_file_name(name, info['vis_bytes'])
            for sub, key in (('vi', 'vis_bytes'), ('ir', 'ir_bytes')):
                with open(osp.join(out_dir, sub, file_name), 'wb') as f:
                    f.write(info[key])
            images[name] = (file_name, digest)
        elif images[name][1] != digest:
            raise InvalidSampleError(info['source'], name, 'this image_name appeared before '
                                     'with different image bytes; expected one image per name')
        try:
            mask = load_npy_mask(info['seg_bytes']) > 0
        except (ValueError, OSError, EOFError) as error:
            raise InvalidSampleError(info['source'], name, 'segmentation is not a readable '
                                     '.npy array') from error
        key = (name, hashlib.sha1(np.packbits(mask).tobytes() + str(mask.shape).encode())
               .hexdigest())
        if key not in objects:
            k = per_image.get(name, 0)
            per_image[name] = k + 1
            mask_name = f'{osp.splitext(images[name][0])[0]}_{k}'
            cv2.imwrite(osp.join(out_dir, 'mask', mask_name + '.png'),
                        mask.astype(np.uint8) * 255)
            objects[key] = dict(name=mask_name, image=images[name][0], expressions=[])
        objects[key]['expressions'].append(info['text'])
    with open(osp.join(out_dir, ann_name), 'w', encoding='utf-8') as f:
        for line in objects.values():
            f.write(json.dumps(line, ensure_ascii=False) + '\n')
    return dict(images=len(images), objects=len(objects),
                expressions=sum(len(o['expressions']) for o in objects.values()))


def folder_to_parquet(data_root: str, out_file: str, ann_file: str = 'refs.jsonl',
                      row_group_size: int = 64, skip_invalid: bool = False) -> int:
    """Write the folder layout as one MM-RIS parquet file (one row per expression).

    Args:
        data_root (str): The folder with ``vi/``, ``ir/``, ``mask/`` and ``ann_file``.
        out_file (str): The parquet file to write.
        ann_file (str): The JSON-lines file, relative to ``data_root``.
            Defaults to 'refs.jsonl'.
        row_group_size (int): Rows per row group (small = fast random access).
            Defaults to 64.
        skip_invalid (bool): Skip invalid lines. Defaults to False.

    Returns:
        int: Rows written.
    """
    dataset = RISFolderDataset(ann_file=ann_file, data_root=data_root,
                               skip_invalid=skip_invalid, serialize_data=False)
    cache: Dict[str, bytes] = {}
    with MMRISParquetWriter(out_file, row_group_size) as writer:
        for idx in range(len(dataset)):
            info = dataset.get_data_info(idx)
            for path in (info['vis_path'], info['ir_path'], info['seg_map_path']):
                if path not in cache:
                    if len(cache) > 64:
                        cache.clear()
                    with open(path, 'rb') as f:
                        cache[path] = f.read()
            mask = cv2.imdecode(np.frombuffer(cache[info['seg_map_path']], np.uint8),
                                cv2.IMREAD_UNCHANGED)
            if mask is None or mask.ndim != 2:
                raise InvalidSampleError(info['source'], info['img_name'],
                                         f'mask {info["seg_map_path"]!r} is not a 2-D image')
            writer.write(info['img_name'], cache[info['vis_path']], cache[info['ir_path']],
                         info['text'], encode_npy((mask > 0).astype(np.uint8)))
    return len(dataset)


def rechunk_parquet(src: str, out_file: str, row_group_size: int = 64) -> int:
    """Copy MM-RIS parquet (a file or a folder of parts) into one file with small row groups.

    Random access decodes one row group per sample; the published files may hold large
    row groups, which makes every read decode many rows. Byte columns stored in Hugging
    Face's image layout become plain binary, as in the official schema.

    Args:
        src (str): A parquet file, a folder of them or a glob pattern.
        out_file (str): The file to write.
        row_group_size (int): Rows per row group. Defaults to 64.

    Returns:
        int: Rows written.
    """
    import pyarrow.parquet as pq
    total = 0
    with MMRISParquetWriter(out_file, row_group_size) as writer:
        for path in parquet_files(src):
            pf = pq.ParquetFile(path, memory_map=True)
            for batch in pf.iter_batches(batch_size=row_group_size,
                                         columns=list(MM_RIS_COLUMNS)):
                columns = [batch.column(c).to_pylist() for c in MM_RIS_COLUMNS]
                for values in zip(*columns):
                    writer.write(*(v.get('bytes') if isinstance(v, dict) else v
                                   for v in values))
                total += batch.num_rows
    return total


#: What :func:`check_mm_ris` reports, in the order of its summary.
CHECK_KINDS = ('invalid', 'duplicate', 'repeated_expression', 'image_name_reused', 'mask_values',
               'unknown_tokens')


def check_mm_ris(src: str, tokenizer_path: Optional[str] = None, max_length: int = 20,
                 max_pixels: int = MAX_PIXELS) -> List[Tuple[str, str]]:
    """Read and decode every row of an MM-RIS split, listing each bad one with its reason.

    One pass, one row in memory at a time, nothing decoded before its size is checked.
    Kinds of problems:

    - ``invalid``: what the dataset refuses (unreadable or damaged file or row group,
      non-UTF-8 or empty text, null, undecodable, oversized or mis-sized images or masks);
    - ``duplicate``: a row identical to an earlier one (all five columns);
    - ``repeated_expression``: an earlier row's image and expression with another mask (one
      expression for two objects);
    - ``image_name_reused``: an image name seen before with other image bytes;
    - ``mask_values``: a mask with values other than 0, 1 and 255 (NaN included);
    - ``unknown_tokens``: an expression whose kept tokens the tokenizer does not know
      (only with ``tokenizer_path``).

    The dataset uses all but the invalid ones with a warning; a test split scores duplicates
    twice.

    Args:
        src (str): A parquet file, a folder of them or a glob pattern.
        tokenizer_path (str, optional): The tokenizer folder of the config, to check the
            expressions. Defaults to None (not checked).
        max_length (int): Tokens the config keeps (``TokenizeText.max_length``).
            Defaults to 20.
        max_pixels (int): Larger images and masks are invalid. Defaults to
            :data:`~mmrisfusion.datasets.transforms.loading.MAX_PIXELS`.

    Returns:
        list[tuple[str, str]]: (kind, message naming the file, row and image name), in file
        and row order.
    """
    from mmengine.logging import MMLogger
    dataset = MMRISDataset(src, skip_invalid=True, serialize_data=False, lazy_init=True)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # every problem is in the list; no log line per row
    try:
        try:
            dataset.full_init()
        except InvalidSampleError as error:  # nothing valid left: report what was skipped
            return [('invalid', message) for message in dataset.skipped + [str(error)]]
        problems = [('invalid', message) for message in dataset.skipped]
        checker = _RowChecker(tokenizer_path, max_length, max_pixels)
        for idx in range(len(dataset)):
            problems += checker(dataset, idx)
    finally:
        logger.setLevel(level)
    # at-opening problems first came first; list everything in file and row order
    ordered = sorted(enumerate(problems), key=lambda item: (_row_key(item[1][1]), item[0]))
    return [problem for _, problem in ordered]


class _RowChecker:
    """The per-row checks of :func:`check_mm_ris`, remembering the rows seen so far."""

    def __init__(self, tokenizer_path: Optional[str], max_length: int, max_pixels: int) -> None:
        from mmcv.transforms import Compose

        from .transforms import LoadRISAnnotation, LoadRISImages, TokenizeText
        self.load = Compose([LoadRISImages(max_pixels=max_pixels),
                             LoadRISAnnotation(max_pixels=max_pixels)])
        self.tokenize = (None if tokenizer_path is None
                         else TokenizeText(tokenizer_path, max_length))
        self.max_pixels = max_pixels
        self.rows: Dict[bytes, str] = {}  # digest of the whole row -> its source
        self.expressions: Dict[Tuple[str, str], str] = {}  # (name, text) -> first source
        self.images: Dict[str, Tuple[bytes, str]] = {}  # name -> (image digest, source)

    def __call__(self, dataset: MMRISDataset, idx: int) -> List[Tuple[str, str]]:
        try:
            info = dataset.get_data_info(idx)
            self.load(dict(info))
        except InvalidSampleError as error:
            return [('invalid', str(error))]
        where = f'{info["source"]} (image_name={info["img_name"]!r})'
        problems = []
        image_digest = hashlib.sha1(info['vis_bytes'] + info['ir_bytes']).digest()
        row_digest = hashlib.sha1(image_digest + info['seg_bytes'] + info['img_name'].encode()
                                  + b'\0' + info['text'].encode()).digest()
        first_row = self.rows.setdefault(row_digest, info['source'])
        first_expression = self.expressions.setdefault((info['img_name'], info['text']),
                                                       info['source'])
        if first_row != info['source']:
            problems.append(('duplicate', f'{where}: the same row as {first_row}'))
        elif first_expression != info['source']:
            problems.append(('repeated_expression', f'{where}: the image and expression of '
                             f'{first_expression} with another mask'))
        first_image = self.images.setdefault(info['img_name'], (image_digest, info['source']))
        if first_image[0] != image_digest:
            problems.append(('image_name_reused', f'{where}: other image bytes than '
                             f'{first_image[1]} of the same name'))
        odd = unexpected_mask_values(load_npy_mask(info['seg_bytes'], self.max_pixels))
        if odd is not None:
            problems.append(('mask_values', f'{where}: {odd}'))
        if self.tokenize is not None and self.tokenize.unknown_only(
                self.tokenize.encode(info['text'])):
            problems.append(('unknown_tokens', f'{where}: the expression '
                             f'{info["text"][:80]!r} gives the tokenizer no known word'))
        return problems


def _row_key(message: str) -> Tuple[str, int]:
    """(file, row) of a message that starts with ``<file>:row <n>``, for sorting."""
    match = re.match(r'(.*?):row (\d+)', message)
    return (match[1], int(match[2])) if match else (message, -1)
