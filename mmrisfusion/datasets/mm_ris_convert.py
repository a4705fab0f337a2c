"""MM-RIS parquet <-> image folders, re-chunking and checking (``tools/dataset_converters``).

Image bytes are copied as they are (never re-encoded); masks become PNGs (0/255) in the
folder layout and ``.npy`` uint8 arrays (0/1) in parquet, so a round trip keeps images
byte-identical and masks' foreground (value > 0) identical.
"""
import hashlib
import io
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

from .base_ris_dataset import InvalidSampleError
from .folder_datasets import RISFolderDataset
from .mm_ris import MMRISDataset, parquet_files
from .mm_ris_format import MM_RIS_COLUMNS, MMRISParquetWriter, encode_npy

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
            mask = np.load(io.BytesIO(info['seg_bytes']), allow_pickle=False) > 0
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


def check_mm_ris(src: str) -> List[str]:
    """Decode every row of an MM-RIS split and list the invalid ones.

    Args:
        src (str): A parquet file, a folder of them or a glob pattern.

    Returns:
        list[str]: One message per invalid row (file, row, image_name and the problem).
    """
    from .transforms import LoadRISAnnotation, LoadRISImages
    dataset = MMRISDataset(src, skip_invalid=True, serialize_data=False,
                           pipeline=[LoadRISImages(), LoadRISAnnotation()])
    for idx in range(len(dataset)):
        dataset.prepare_data(idx)
    return list(dataset.skipped)
