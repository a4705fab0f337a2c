"""The MM-RIS parquet format: columns, schema, mask bytes and the row-group writer."""
import io

import numpy as np
import pyarrow.parquet as pq

from mmrisfusion.datasets.mm_ris_format import (
    MM_RIS_COLUMNS,
    MMRISParquetWriter,
    encode_npy,
    mm_ris_schema,
)


def test_schema_and_mask_bytes():
    schema = mm_ris_schema()
    assert tuple(schema.names) == MM_RIS_COLUMNS
    assert [str(schema.field(c).type) for c in MM_RIS_COLUMNS] == [
        'string', 'binary', 'binary', 'string', 'binary']
    mask = (np.arange(12).reshape(3, 4) % 2).astype(np.uint8)
    np.testing.assert_array_equal(np.load(io.BytesIO(encode_npy(mask)), allow_pickle=False),
                                  mask)


def test_row_groups_close_at_rows_or_bytes(tmp_path):
    path = tmp_path / 'x.parquet'
    with MMRISParquetWriter(str(path), row_group_size=3, row_group_bytes=100) as writer:
        for k in range(5):  # 30 bytes a row: the byte limit does not bite
            writer.write(f'{k}.png', b'v' * 10, b'i' * 10, f'q{k}', b's' * 10)
        writer.write('big.png', b'v' * 200, b'', 'big', b'')  # over the byte limit alone
        writer.write('last.png', b'v', b'i', 'last', b's')
    assert writer.num_rows == 7
    meta = pq.ParquetFile(str(path)).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [3, 3, 1]
    table = pq.read_table(str(path))
    assert table.column('question').to_pylist() == [f'q{k}' for k in range(5)] + ['big', 'last']
    assert table.schema.equals(mm_ris_schema())
