"""MMRISDataset: the official schema, lazy reading, the round trip and every bad input."""
import io
import pickle
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from mmengine.dataset import BaseDataset, pseudo_collate
from ris_data_helpers import corrupt, npy_bytes, read_rows, write_rows

from mmrisfusion.datasets import (
    InvalidSampleError,
    LoadRISAnnotation,
    LoadRISImages,
    MMRISDataset,
    PackRISInputs,
    SyntheticMMRIS,
    mm_ris_schema,
)
from mmrisfusion.datasets.synthetic_mmris import encode_png
from mmrisfusion.registry import DATASETS
from mmrisfusion.structures import RISDataSample

LOAD = [LoadRISImages(), LoadRISAnnotation()]


def test_reads_rows_lazily(tiny_parquet):
    ds = MMRISDataset(str(tiny_parquet))
    assert len(ds) == 24
    info = ds.get_data_info(5)
    assert info['source'] == 'mm_ris_test.parquet:row 5'
    assert info['sample_idx'] == 5
    rows = read_rows(tiny_parquet)
    assert info['img_name'] == rows['image_name'][5]
    assert info['text'] == rows['question'][5]
    assert info['vis_bytes'] == rows['visible_image'][5]
    assert info['ir_bytes'] == rows['infrared_image'][5]
    assert info['seg_bytes'] == rows['segmentation'][5]
    # what mmengine serialises and shares with the workers holds no image bytes
    stored = BaseDataset.get_data_info(ds, 5)
    assert not {'vis_bytes', 'ir_bytes', 'seg_bytes'} & set(stored)
    assert ds.data_bytes.nbytes < 200 * len(ds)


def test_lazy_init_reads_nothing(tmp_path, tiny_parquet):
    path = shutil.copy(tiny_parquet, tmp_path / 'x.parquet')
    ds = MMRISDataset(str(path), lazy_init=True)
    assert not ds._fully_initialized and ds.files == []
    assert len(ds) == 24


def test_folder_of_parts_is_concatenated(tmp_path, tiny_parquet):
    rows = read_rows(tiny_parquet)
    parts = tmp_path / 'train'
    parts.mkdir()
    write_rows(parts / 'part-0.parquet', {k: v[:10] for k, v in rows.items()})
    write_rows(parts / 'part-1.parquet', {k: v[10:] for k, v in rows.items()})
    ds = MMRISDataset('train', data_root=str(tmp_path))
    assert len(ds) == 24
    assert [ds.get_data_info(i)['text'] for i in range(24)] == rows['question']
    assert ds.get_data_info(12)['source'] == 'part-1.parquet:row 2'


def _official_layout(folder, rows):
    """The official MM-RIS folder: the train split in two parts beside val and test."""
    write_rows(folder / 'mm_ris_train_part1.parquet', {k: v[:10] for k, v in rows.items()})
    write_rows(folder / 'mm_ris_train_part2.parquet', {k: v[10:] for k, v in rows.items()})
    for split in ('val', 'test'):
        write_rows(folder / f'mm_ris_{split}.parquet', {k: v[:3] for k, v in rows.items()})


def test_train_parts_by_pattern_leave_val_and_test_out(tmp_path, tiny_parquet):
    rows = read_rows(tiny_parquet)
    _official_layout(tmp_path, rows)
    ds = MMRISDataset('mm_ris_train_part*.parquet', data_root=str(tmp_path))
    assert [p.name for p in map(Path, ds.files)] == ['mm_ris_train_part1.parquet',
                                                      'mm_ris_train_part2.parquet']
    assert [ds.get_data_info(i)['text'] for i in range(len(ds))] == rows['question']
    assert ds.get_data_info(12)['source'] == 'mm_ris_train_part2.parquet:row 2'
    # The whole folder would add val and test to training: what the pattern avoids.
    assert len(MMRISDataset('', data_root=str(tmp_path))) == 24 + 2 * 3


def test_list_of_files_and_patterns_reads_in_the_given_order(tmp_path, tiny_parquet):
    rows = read_rows(tiny_parquet)
    _official_layout(tmp_path, rows)
    ds = MMRISDataset(['mm_ris_train_part2.parquet', 'mm_ris_train_part1*'],
                      data_root=str(tmp_path))
    assert [ds.get_data_info(i)['text'] for i in range(len(ds))] == (rows['question'][10:] +
                                                                      rows['question'][:10])
    built = DATASETS.build(dict(type='MMRISDataset', data_root=str(tmp_path),
                                data_path=['mm_ris_val.parquet', 'mm_ris_test.parquet']))
    assert len(built) == 6


def test_bad_data_paths_are_named(tmp_path, tiny_parquet):
    _official_layout(tmp_path, read_rows(tiny_parquet))
    with pytest.raises(FileNotFoundError, match=r"mm_ris_train_full\*.*holds \['mm_ris_test"):
        MMRISDataset('mm_ris_train_full*.parquet', data_root=str(tmp_path))
    with pytest.raises(ValueError, match='mm_ris_train_part1.parquet.*more than once'):
        MMRISDataset(['mm_ris_train_part*.parquet', 'mm_ris_train_part1.parquet'],
                     data_root=str(tmp_path))
    with pytest.raises(ValueError, match='empty list'):
        MMRISDataset([], data_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match='nothing.parquet.*neither'):
        MMRISDataset(['mm_ris_val.parquet', 'nothing.parquet'], data_root=str(tmp_path))


def test_round_trip_generator_to_packed_sample(tiny_parquet, minilm_path):
    """generator -> parquet -> dataset -> pipeline -> packed sample, pixel-exact."""
    gen = SyntheticMMRIS(size=64, seed=0)
    expected = list(gen.iter_rows(24, 'test'))
    ds = DATASETS.build(dict(
        type='MMRISDataset', data_path=str(tiny_parquet), test_mode=True,
        pipeline=[dict(type='LoadRISImages'), dict(type='LoadRISAnnotation'),
                  dict(type='TokenizeText', tokenizer_path=minilm_path),
                  dict(type='PackRISInputs')]))
    for idx in (0, 7, 23):
        out = ds[idx]
        sample = out['data_samples']
        assert isinstance(sample, RISDataSample)
        row = expected[idx]
        assert torch.equal(out['inputs']['vis'], torch.from_numpy(row['vis']).permute(2, 0, 1))
        ir = torch.from_numpy(row['ir'])
        assert torch.equal(out['inputs']['ir'], ir.expand(3, -1, -1))
        assert torch.equal(sample.gt_sem_seg.data[0], torch.from_numpy(row['mask']).long())
        assert sample.text == row['question']
        assert sample.token_ids.shape == (20, ) and sample.token_mask.sum() > 2
        assert sample.img_name == row['image_name']
        assert sample.ori_shape == (64, 64)


def test_workers_and_pickling(tiny_parquet):
    ds = MMRISDataset(str(tiny_parquet), pipeline=LOAD + [PackRISInputs()])
    ds[0]  # opens this process's reader
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._reader_cache is None and len(clone) == 24
    loader = torch.utils.data.DataLoader(ds, batch_size=6, num_workers=2,
                                         collate_fn=pseudo_collate)
    names = [s.img_name for batch in loader for s in batch['data_samples']]
    assert names == [ds.get_data_info(i)['img_name'] for i in range(24)]


def test_reader_cache_is_bounded(tiny_parquet):
    ds = MMRISDataset(str(tiny_parquet), row_group_cache=2)
    for idx in range(24):
        ds.get_data_info(idx)
    assert len(ds._reader()._cache) == 2


# ---------------------------------------------------------------- bad input
def _error(ds, idx):
    with pytest.raises(InvalidSampleError) as info:
        ds.pipeline(ds.get_data_info(idx))
    return str(info.value)


def _expect(message, *parts):
    for part in parts:
        assert part in message, f'{part!r} not in {message!r}'


def test_undecodable_image_bytes(tmp_path, tiny_parquet):
    name = read_rows(tiny_parquet)['image_name'][3]
    for column in ('visible_image', 'infrared_image'):
        path = corrupt(tiny_parquet, tmp_path / f'{column}.parquet', 3,
                       **{column: b'not an image'})
        for backend in ('pillow', 'cv2'):
            ds = MMRISDataset(str(path), pipeline=[LoadRISImages(decode_backend=backend)])
            _expect(_error(ds, 3), f'{column}.parquet:row 3', repr(name), column,
                    'not a decodable image', 'PNG/JPEG')


def test_mask_of_wrong_size_or_rank(tmp_path, tiny_parquet):
    for label, mask, expected in (('size', np.ones((32, 64), np.uint8), 'is 64x32 but the '
                                   'images are 64x64'),
                                  ('rank', np.ones((64, 64, 2), np.uint8), 'expected a 2-D'),
                                  ('bytes', None, 'not a readable .npy')):
        data = b'garbage' if mask is None else npy_bytes(mask)
        path = corrupt(tiny_parquet, tmp_path / f'{label}.parquet', 2, segmentation=data)
        ds = MMRISDataset(str(path), pipeline=LOAD)
        _expect(_error(ds, 2), f'{label}.parquet:row 2', expected)


def test_pickled_mask_is_refused(tmp_path, tiny_parquet):
    buf = io.BytesIO()
    np.save(buf, np.array([{'a': 1}], dtype=object), allow_pickle=True)
    path = corrupt(tiny_parquet, tmp_path / 'pickle.parquet', 1, segmentation=buf.getvalue())
    ds = MMRISDataset(str(path), pipeline=LOAD)
    _expect(_error(ds, 1), 'pickle.parquet:row 1', 'not a readable .npy')


def test_ir_and_vis_of_different_sizes(tmp_path, tiny_parquet):
    other = SyntheticMMRIS(size=48, seed=1).scene_rows(0)[0]
    path = corrupt(tiny_parquet, tmp_path / 'sizes.parquet', 4,
                   infrared_image=encode_png(other['ir']))
    ds = MMRISDataset(str(path), pipeline=LOAD)
    _expect(_error(ds, 4), 'sizes.parquet:row 4', 'VIS is 64x64 but IR is 48x48')


@pytest.mark.parametrize('question,expected', [('', "question is ''"),
                                               ('   ', "question is '   '"),
                                               (None, 'question is None')])
def test_empty_expression(tmp_path, tiny_parquet, question, expected):
    path = corrupt(tiny_parquet, tmp_path / 'q.parquet', 6, question=question)
    with pytest.raises(InvalidSampleError) as info:
        MMRISDataset(str(path))
    name = read_rows(tiny_parquet)['image_name'][6]
    _expect(str(info.value), 'q.parquet:row 6', repr(name), expected, 'non-empty string')


def test_non_string_expression_column(tmp_path, tiny_parquet):
    rows = read_rows(tiny_parquet)
    rows['question'] = list(range(24))
    schema = pa.schema([('image_name', pa.string()), ('visible_image', pa.binary()),
                        ('infrared_image', pa.binary()), ('question', pa.int64()),
                        ('segmentation', pa.binary())])
    path = write_rows(tmp_path / 'int.parquet', rows, schema)
    with pytest.raises(InvalidSampleError, match=r"int.parquet.*'question' has type int64; "
                       'expected strings'):
        MMRISDataset(str(path))


def test_missing_column(tmp_path, tiny_parquet):
    rows = read_rows(tiny_parquet)
    del rows['segmentation']
    schema = pa.schema([f for f in mm_ris_schema() if f.name != 'segmentation'])
    path = write_rows(tmp_path / 'cols.parquet', rows, schema)
    with pytest.raises(InvalidSampleError, match=r"cols.parquet: missing column\(s\) "
                       r"\['segmentation'\]"):
        MMRISDataset(str(path))


def test_empty_files(tmp_path, tiny_parquet):
    (tmp_path / 'zero.parquet').write_bytes(b'')
    with pytest.raises(InvalidSampleError, match=r'zero.parquet: the file is empty \(0 bytes\)'):
        MMRISDataset(str(tmp_path / 'zero.parquet'))
    path = write_rows(tmp_path / 'norows.parquet', {k: [] for k in read_rows(tiny_parquet)})
    with pytest.raises(InvalidSampleError, match='norows.parquet: the file holds no rows'):
        MMRISDataset(str(path))
    (tmp_path / 'empty_dir').mkdir()
    with pytest.raises(FileNotFoundError, match=r'holds no \*.parquet'):
        MMRISDataset(str(tmp_path / 'empty_dir'))


def test_null_image_bytes(tmp_path, tiny_parquet):
    path = corrupt(tiny_parquet, tmp_path / 'null.parquet', 9, visible_image=None)
    ds = MMRISDataset(str(path), pipeline=LOAD)
    with pytest.raises(InvalidSampleError, match='null.parquet:row 9.*visible_image is null'):
        ds[9]


def test_skip_invalid_logs_and_counts(tmp_path, tiny_parquet):
    rows = read_rows(tiny_parquet)
    rows['question'][0] = ''  # found at opening: dropped before indexing
    rows['visible_image'][1] = b'broken'  # found when decoding
    path = write_rows(tmp_path / 'bad.parquet', rows)
    ds = MMRISDataset(str(path), skip_invalid=True, pipeline=LOAD + [PackRISInputs()])
    assert len(ds) == 23 and ds.num_skipped == 1
    assert 'bad.parquet:row 0' in ds.skipped[0]
    np.random.seed(0)
    out = ds[0]  # row 1 of the file: skipped, another row is drawn
    assert out['data_samples'].source != 'bad.parquet:row 1'
    assert ds.num_skipped == 2 and 'bad.parquet:row 1' in ds.skipped[1]
    # test mode never skips at decode time: the metric would cover fewer samples
    ds_test = MMRISDataset(str(path), skip_invalid=True, test_mode=True, pipeline=LOAD)
    with pytest.raises(InvalidSampleError, match='Test-mode datasets do not skip'):
        ds_test[0]
    with pytest.raises(InvalidSampleError, match='bad.parquet:row 0'):
        MMRISDataset(str(path))  # default: raise


def test_hugging_face_image_structs(tmp_path, tiny_parquet):
    rows = read_rows(tiny_parquet)
    image = pa.struct([('bytes', pa.binary()), ('path', pa.string())])
    for column in ('visible_image', 'infrared_image'):
        rows[column] = [dict(bytes=b, path=None) for b in rows[column]]
    schema = pa.schema([('image_name', pa.string()), ('visible_image', image),
                        ('infrared_image', image), ('question', pa.string()),
                        ('segmentation', pa.binary())])
    path = write_rows(tmp_path / 'hf.parquet', rows, schema)
    ds = MMRISDataset(str(path), pipeline=LOAD)
    assert ds.get_data_info(3)['vis_bytes'] == read_rows(tiny_parquet)['visible_image'][3]
    assert ds[3]['vis'].shape == (64, 64, 3)


def test_arrow_cache_reads_the_same_rows(tmp_path, tiny_parquet):
    rows = read_rows(tiny_parquet)
    one_group = tmp_path / 'one_group.parquet'
    import pyarrow.parquet as pq
    pq.write_table(pq.read_table(str(tiny_parquet)), str(one_group))  # a single row group
    assert pq.ParquetFile(str(one_group)).metadata.num_row_groups == 1
    cache = tmp_path / 'cache'
    ds = MMRISDataset(str(one_group), cache_dir=str(cache), pipeline=LOAD)
    copies = list(cache.iterdir())
    assert len(copies) == 1 and copies[0].suffix == '.arrow'
    assert ds.read_files == [str(copies[0])]
    for idx in (0, 13, 23):
        info = ds.get_data_info(idx)
        assert info['vis_bytes'] == rows['visible_image'][idx]
        assert info['seg_bytes'] == rows['segmentation'][idx]
    assert ds[5]['gt_seg_map'].shape == (64, 64)
    mtime = copies[0].stat().st_mtime_ns
    MMRISDataset(str(one_group), cache_dir=str(cache))  # reused, not rewritten
    assert [p.stat().st_mtime_ns for p in cache.iterdir()] == [mtime]
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2,
                                         collate_fn=pseudo_collate)
    assert sum(len(b['img_name']) for b in loader) == 24


def test_writer_row_groups_are_bounded(tmp_path):
    import pyarrow.parquet as pq

    from mmrisfusion.datasets import make_synthetic_mmris
    path = make_synthetic_mmris(str(tmp_path / 'x.parquet'), 20, size=48, row_group_size=6)
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [6, 6, 6, 2]
    assert meta.row_group(0).column(1).compression == 'UNCOMPRESSED'
