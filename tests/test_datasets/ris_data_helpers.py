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

