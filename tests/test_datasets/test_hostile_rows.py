"""Hostile MM-RIS files: decompression bombs, damaged pages, lying headers, bad text, and
rows that load but are not what was meant. Each is named, skippable or counted, and listed by
``tools/dataset_converters/mm_ris.py check`` in one pass."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from ris_data_helpers import (
    damage_page,
    npy_bytes,
    npy_claiming,
    png_claiming,
    read_rows,
    write_raw_strings,
    write_rows,
)

from mmrisfusion.datasets import (
    InvalidSampleError,
    LoadRISAnnotation,
    LoadRISImages,
    MMRISDataset,
    RISFolderDataset,
    TokenizeText,
    mm_ris,
    suspicious_row_counts,
)
from mmrisfusion.datasets.base_ris_dataset import _SUSPICIOUS
from mmrisfusion.datasets.mm_ris_convert import check_mm_ris

REPO = Path(__file__).resolve().parents[2]
BOMB = png_claiming(30000, 30000)  # 900 megapixels: 2.7 GB as RGB, 196 bytes here


@pytest.fixture(autouse=True)
def fresh_counts():
    _SUSPICIOUS.clear()
    yield
    _SUSPICIOUS.clear()


def one_row_file(tiny_parquet, path, row=0, **changes) -> Path:
    """The first ``row + 1`` rows of the tiny split, ``row`` changed, one row per row group."""
    rows = {column: values[:row + 1] for column, values in read_rows(tiny_parquet).items()}
    for column, value in changes.items():
        rows[column][row] = value
    return write_raw_strings(path, rows)


@pytest.mark.parametrize('backend', ['pillow', 'cv2'])
@pytest.mark.parametrize('column', ['visible_image', 'infrared_image'])
def test_decompression_bomb_is_refused_from_its_header(tmp_path, tiny_parquet, backend,
                                                       column):
    path = one_row_file(tiny_parquet, tmp_path / 'bomb.parquet', 1, **{column: BOMB})
    load = [LoadRISImages(decode_backend=backend)]
    ds = MMRISDataset(str(path), pipeline=load)
    with pytest.raises(InvalidSampleError, match=rf'bomb.parquet:row 1 .*{column}: .*900000000 '
                       'pixels.*nothing was decoded'):
        ds[1]
    # a smaller one, under Pillow's own limit, against a configured limit
    path = one_row_file(tiny_parquet, tmp_path / 'big.parquet', 0,
                        **{column: png_claiming(3000, 2000)})
    ds = MMRISDataset(str(path), pipeline=[LoadRISImages(decode_backend=backend,
                                                         max_pixels=10**6)])
    with pytest.raises(InvalidSampleError, match=r'big.parquet:row 0 .*3000x2000 = 6000000 '
                       r'pixels, above max_pixels=1000000; nothing was decoded'):
        ds[0]
    # skippable in training like any invalid row
    path = one_row_file(tiny_parquet, tmp_path / 'skip.parquet', 1, **{column: BOMB})
    ds = MMRISDataset(str(path), skip_invalid=True, pipeline=load)
    assert ds.prepare_data(1) is None and 'skip.parquet:row 1' in ds.skipped[0]


def test_mask_whose_header_claims_a_terabyte(tmp_path, tiny_parquet):
    path = one_row_file(tiny_parquet, tmp_path / 'npy.parquet', 0,
                        segmentation=npy_claiming((10**6, 10**6)))
    ds = MMRISDataset(str(path), pipeline=[LoadRISAnnotation()])
    with pytest.raises(InvalidSampleError, match=r'npy.parquet:row 0 .*shape \(1000000, '
                       r'1000000\): 1000000000000 elements, above max_pixels'):
        ds[0]
    path = one_row_file(tiny_parquet, tmp_path / 'short.parquet', 0,
                        segmentation=npy_claiming((64, 64), data=b'\0' * 100))
    ds = MMRISDataset(str(path), pipeline=[LoadRISAnnotation()])
    with pytest.raises(InvalidSampleError, match=r'short.parquet:row 0 .*declares shape '
                       r'\(64, 64\) of uint8 \(4096 bytes\) but the data holds 100 bytes'):
        ds[0]


def test_damaged_data_page_names_the_row_and_can_be_skipped(tmp_path, tiny_parquet):
    path = one_row_file(tiny_parquet, tmp_path / 'damaged.parquet', 3)
    damage_page(path, 2, 'visible_image')
    ds = MMRISDataset(str(path), pipeline=[LoadRISImages()])
    with pytest.raises(InvalidSampleError, match=r'damaged.parquet:row 2 .*cannot be read .*'
                       'damaged'):
        ds[2]
    assert ds[3]['vis'].shape == (64, 64, 3)  # the other row groups read fine
    ds = MMRISDataset(str(path), skip_invalid=True, pipeline=[LoadRISImages()])
    assert ds.prepare_data(2) is None and ds.num_skipped == 1
    # a damaged page of the strings: its rows are invalid at opening, the others load
    damage_page(path, 1, 'question')
    with pytest.raises(InvalidSampleError, match=r'damaged.parquet:row 1: row group 1 \(rows '
                       r'1-1\) cannot be read'):
        MMRISDataset(str(path))
    assert len(MMRISDataset(str(path), skip_invalid=True)) == 3


def test_question_that_is_not_utf8(tmp_path, tiny_parquet):
    path = one_row_file(tiny_parquet, tmp_path / 'latin1.parquet', 2,
                        question='the café on the left'.encode('latin-1'))
    with pytest.raises(InvalidSampleError, match=r"latin1.parquet:row 2: question is not UTF-8 "
                       r"text \(invalid continuation byte at byte 7 of b'the caf\\xe9"):
        MMRISDataset(str(path))
    ds = MMRISDataset(str(path), skip_invalid=True)
    assert len(ds) == 2 and ds.num_skipped == 1


def test_nothing_valid_left_says_so_and_where(tmp_path, tiny_parquet):
    (tmp_path / 'split').mkdir()
    (tmp_path / 'split' / 'part0.parquet').write_bytes(b'not parquet at all')
    with pytest.raises(InvalidSampleError, match=r'split: no valid sample is left to read '
                       r'\(expected MM-RIS rows\); 1 invalid row\(s\) or file\(s\) were '
                       'skipped'):
        MMRISDataset(str(tmp_path / 'split'), skip_invalid=True)
    rows = read_rows(tiny_parquet)
    rows['question'] = [''] * len(rows['question'])
    path = write_rows(tmp_path / 'blank.parquet', rows)
    with pytest.raises(InvalidSampleError, match=r'blank.parquet: no valid sample .*; 24 invalid'):
        MMRISDataset(str(path), skip_invalid=True)
    # the folder layouts too
    (tmp_path / 'refs.jsonl').write_text('{"name": "a"}\n')
    with pytest.raises(InvalidSampleError, match=r'refs.jsonl: no valid sample .*"expressions"'
                       r'\); 1 invalid'):
        RISFolderDataset(ann_file=str(tmp_path / 'refs.jsonl'), skip_invalid=True)


def test_repeated_rows_are_counted_in_one_warning(tmp_path, tiny_parquet, monkeypatch):
    rows = read_rows(tiny_parquet)
    for column in rows:
        rows[column] = rows[column][:16] + rows[column][:5]
    path = write_rows(tmp_path / 'dup.parquet', rows)
    logged = []
    monkeypatch.setattr(mm_ris, 'print_log', lambda message, **kwargs: logged.append(message))
    ds = MMRISDataset(str(path))
    assert len(ds) == 21  # kept, as the published loader keeps them, but said:
    warnings = [message for message in logged if 'repeat' in message]
    assert len(warnings) == 1
    assert '5 row(s) of' in warnings[0] and 'dup.parquet:row 16 repeats dup.parquet:row 0' \
        in warnings[0]


def test_suspicious_rows_warn_once_per_kind_and_are_counted(tmp_path, tiny_parquet,
                                                            minilm_path):
    rows = read_rows(tiny_parquet)
    rows['segmentation'][0] = npy_bytes(np.full((64, 64), 7, np.int16))
    nan_mask = np.zeros((64, 64), np.float32)
    nan_mask[:4] = np.nan
    nan_mask[4:8] = -1
    rows['segmentation'][1] = npy_bytes(nan_mask)
    rows['question'][2] = '☃ ☃ ☃'
    other = next(i for i, data in enumerate(rows['visible_image'])
                 if data != rows['visible_image'][3])
    rows['image_name'][3] = rows['image_name'][other]  # same name, other images
    path = write_rows(tmp_path / 'odd.parquet', rows)
    ds = MMRISDataset(str(path), pipeline=[LoadRISImages(), LoadRISAnnotation(),
                                           TokenizeText(minilm_path)])
    for idx in range(len(ds)):
        ds[idx]
    assert suspicious_row_counts() == dict(mask_values=2, unknown_tokens=1,
                                           image_name_reused=1)
    mask = ds[1]['gt_seg_map']
    assert mask[:8].sum() == 0 and mask[8:].sum() == 0  # NaN and -1 are background


def test_check_lists_one_bad_row_of_each_kind_in_one_pass(tmp_path, tiny_parquet,
                                                          minilm_path, capsys):
    rows = {column: values[:12] for column, values in read_rows(tiny_parquet).items()}
    rows['visible_image'][1] = BOMB
    rows['segmentation'][2] = npy_claiming((10**6, 10**6))
    rows['question'][3] = 'the café'.encode('latin-1')
    rows['segmentation'][5] = npy_bytes(np.full((64, 64), -1, np.int8))
    rows['question'][6] = '☃'
    rows['image_name'][7] = rows['image_name'][0]  # another scene's name
    for column in rows:
        rows[column].append(rows[column][9])  # row 12: a duplicate of row 9
    for column in rows:  # row 13: row 10's image and expression with another mask
        rows[column].append(rows[column][10])
    rows['segmentation'][13] = npy_bytes(np.zeros((64, 64), np.uint8))
    path = write_raw_strings(tmp_path / 'hostile.parquet', rows)
    damage_page(path, 4, 'infrared_image')
    expected = [('invalid', 1, 'visible_image: Image size (900000000 pixels)'),
                ('invalid', 2, 'shape (1000000, 1000000)'),
                ('invalid', 3, 'question is not UTF-8'),
                ('invalid', 4, 'cannot be read'),
                ('mask_values', 5, 'values -1'),
                ('unknown_tokens', 6, "'☃' gives the tokenizer no known word"),
                ('image_name_reused', 7, 'other image bytes than hostile.parquet:row 0'),
                ('duplicate', 12, 'the same row as hostile.parquet:row 9'),
                ('repeated_expression', 13, 'the image and expression of hostile.parquet:row '
                 '10 with another mask')]
    problems = check_mm_ris(str(path), minilm_path)
    assert [kind for kind, _ in problems] == [kind for kind, _, _ in expected]
    for (kind, message), (_, row, reason) in zip(problems, expected):
        assert message.startswith(f'hostile.parquet:row {row}') and reason in message, message
    spec = importlib.util.spec_from_file_location('mm_ris_tool',
                                                  REPO / 'tools/dataset_converters/mm_ris.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    capsys.readouterr()
    assert tool.main(['check', str(path), '--tokenizer', minilm_path]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:len(expected)] == [f'{kind}: {message}' for kind, message in problems]
    assert out[-1] == ('4 invalid row(s); suspicious: 1 duplicate, 1 repeated_expression, '
                       '1 image_name_reused, 1 mask_values, 1 unknown_tokens')
