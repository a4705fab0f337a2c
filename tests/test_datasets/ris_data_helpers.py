"""Helpers of the dataset tests: read, write and corrupt MM-RIS parquet files."""
import io
from pathlib import Path
from typing import Dict, Optional

import numpy as np


def read_rows(path: Path) -> Dict[str, list]:
    """All columns of a parquet file as Python lists."""
    import pyarrow.parquet as pq
    return pq.read_table(str(path)).to_pydict()


def write_rows(path: Path, columns: Dict[str, list], schema: Optional[object] = None) -> Path:
    """Write columns to a parquet file (the official schema unless ``schema`` is given)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mmrisfusion.datasets import mm_ris_schema
    pq.write_table(pa.table(columns, schema=schema or mm_ris_schema()), str(path),
                   row_group_size=8)
    return path


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def corrupt(tiny_parquet: Path, out: Path, row: int, **changes) -> Path:
    """A copy of the tiny split with ``row``'s columns replaced by ``changes``."""
    rows = read_rows(tiny_parquet)
    for column, value in changes.items():
        rows[column][row] = value
    return write_rows(out, rows)



def png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes of gray PNG whose header declares ``width`` x ``height`` pixels.

    Only the first rows' data is there: a loader that decodes before checking the header
    would allocate the whole image (a decompression bomb) before it found out.
    """
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))

    header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b'\0' * (width + 1) * 4)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', rows)
            + chunk(b'IEND', b''))


def npy_claiming(shape: tuple, dtype: str = '|u1', data: bytes = b'\0' * 64) -> bytes:
    """``.npy`` bytes whose header declares ``shape`` but that hold only ``data``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {'descr': dtype, 'fortran_order': False, 'shape': tuple(shape)})
    return buf.getvalue() + data


def damage_page(path: Path, row_group: int, column: str) -> None:
    """Overwrite the header of ``column``'s first data page in ``row_group`` with garbage."""
    import pyarrow.parquet as pq
    meta = pq.ParquetFile(str(path)).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    offset = meta.row_group(row_group).column(names.index(column)).data_page_offset
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(b'\xff' * 16)


def write_raw_strings(path: Path, columns: Dict[str, list]) -> Path:
    """Write MM-RIS rows whose string columns are given as raw bytes (e.g. not UTF-8).

    pyarrow validates UTF-8 when it builds a string array, so the bytes are written as
    binary and reinterpreted as strings without a check, as another writer could have done.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mmrisfusion.datasets import mm_ris_schema
    schema = mm_ris_schema()
    arrays = []
    for field in schema:
        values = columns[field.name]
        if pa.types.is_string(field.type):
            values = [v.encode() if isinstance(v, str) else v for v in values]
            arrays.append(pa.array(values, pa.binary()).view(pa.string()))
        else:
            arrays.append(pa.array(values, field.type))
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), str(path), row_group_size=1)
    return path
