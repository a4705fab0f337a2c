"""The MM-RIS parquet format: its columns, their Arrow types, and a writer for it.

Shared by the synthetic generator (``synthetic_mmris.py``), the real-data converter
(``mm_ris_convert.py``) and the reader (``mm_ris.py``). pyarrow is imported where used.
"""
import io
from typing import Dict

import numpy as np

#: The official column names, in the official order.
MM_RIS_COLUMNS = ('image_name', 'visible_image', 'infrared_image', 'question', 'segmentation')


def encode_npy(array: np.ndarray) -> bytes:
    """The bytes of a ``.npy`` file holding ``array`` (what MM-RIS stores as a mask).

    Args:
        array (np.ndarray): A numeric array (never pickled).

    Returns:
        bytes: The ``.npy`` file's bytes.
    """
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def mm_ris_schema():
    """The official MM-RIS Arrow schema: two strings and three binary columns."""
    import pyarrow as pa
    return pa.schema([('image_name', pa.string()), ('visible_image', pa.binary()),
                      ('infrared_image', pa.binary()), ('question', pa.string()),
                      ('segmentation', pa.binary())])


class MMRISParquetWriter:
    """Write MM-RIS rows to parquet in row groups sized for random access.

    A row group closes at ``row_group_size`` rows or ``row_group_bytes`` of data, whichever
    comes first, since a random read decodes one whole row group. Image columns are stored
    uncompressed (PNG/JPEG bytes do not compress further, and skipping the codec makes
    reads cheaper); the other columns use snappy.

    Args:
        out_file (str): The parquet file to write.
        row_group_size (int): Maximum rows per row group. Defaults to 64.
        row_group_bytes (int): Maximum bytes per row group. Defaults to 4 MiB.
    """

    def __init__(self, out_file: str, row_group_size: int = 64,
                 row_group_bytes: int = 4 << 20) -> None:
        import pyarrow.parquet as pq
        self.schema = mm_ris_schema()
        self.row_group_size = row_group_size
        self.row_group_bytes = row_group_bytes
        self._writer = pq.ParquetWriter(
            out_file, self.schema,
            compression={'image_name': 'snappy', 'visible_image': 'none',
                         'infrared_image': 'none', 'question': 'snappy',
                         'segmentation': 'snappy'})
        self._rows: Dict[str, list] = {name: [] for name in MM_RIS_COLUMNS}
        self._bytes = 0
        self.num_rows = 0

    def write(self, image_name: str, visible_image: bytes, infrared_image: bytes,
              question: str, segmentation: bytes) -> None:
        """Add one row (the official columns, in order)."""
        values = (image_name, visible_image, infrared_image, question, segmentation)
        for name, value in zip(MM_RIS_COLUMNS, values):
            self._rows[name].append(value)
        self._bytes += len(visible_image) + len(infrared_image) + len(segmentation)
        self.num_rows += 1
        if len(self._rows['image_name']) >= self.row_group_size or \
                self._bytes >= self.row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        if self._rows['image_name']:
            self._writer.write_table(pa.table(self._rows, schema=self.schema))
        self._rows = {name: [] for name in MM_RIS_COLUMNS}
        self._bytes = 0

    def close(self) -> None:
        """Write the last row group and the footer."""
        self._flush()
        self._writer.close()

    def __enter__(self) -> 'MMRISParquetWriter':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
