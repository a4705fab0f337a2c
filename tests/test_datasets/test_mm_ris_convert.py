"""Parquet <-> folder round trip, re-chunking, checking, and the command-line tools."""
import importlib.util
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from ris_data_helpers import corrupt, read_rows

from mmrisfusion.datasets import MMRISDataset
from mmrisfusion.datasets.mm_ris_convert import (
    check_mm_ris,
    folder_to_parquet,
    parquet_to_folder,
    rechunk_parquet,
)

REPO = Path(__file__).resolve().parents[2]


def load_tool(relative: str):
    spec = importlib.util.spec_from_file_location(Path(relative).stem, REPO / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def as_multiset(path):
    rows = read_rows(path)
    return Counter(
        (rows['image_name'][i], rows['visible_image'][i], rows['infrared_image'][i],
         rows['question'][i],
         (np.load(io.BytesIO(rows["segmentation"][i])) > 0).tobytes())
        for i in range(len(rows['image_name'])))


def test_parquet_folder_round_trip(tmp_path, tiny_parquet):
    counts = parquet_to_folder(str(tiny_parquet), str(tmp_path / 'folder'))
    lines = [json.loads(x) for x in (tmp_path / 'folder' / 'refs.jsonl').read_text().split('\n')
             if x]
    assert counts['expressions'] == 24 and counts['objects'] == len(lines)
    assert counts['images'] == len(set(read_rows(tiny_parquet)['image_name']))
    assert all(line['image'].endswith('.png') for line in lines)
    back = tmp_path / 'back.parquet'
    assert folder_to_parquet(str(tmp_path / 'folder'), str(back)) == 24
    assert as_multiset(back) == as_multiset(tiny_parquet)
    assert pq.ParquetFile(str(back)).schema_arrow == pq.ParquetFile(str(tiny_parquet)).schema_arrow


def test_rechunk(tmp_path, tiny_parquet):
    out = tmp_path / 'small.parquet'
    assert rechunk_parquet(str(tiny_parquet), str(out), row_group_size=5) == 24
    meta = pq.ParquetFile(str(out)).metadata
    assert meta.num_row_groups == 5 and meta.row_group(0).num_rows == 5
    assert read_rows(out) == read_rows(tiny_parquet)


def test_check_lists_invalid_rows(tmp_path, tiny_parquet):
    path = corrupt(tiny_parquet, tmp_path / 'bad.parquet', 5, visible_image=b'xx')
    problems = check_mm_ris(str(path))
    assert len(problems) == 1 and problems[0][0] == 'invalid'
    assert problems[0][1].startswith('bad.parquet:row 5')
    assert check_mm_ris(str(tiny_parquet)) == []


def test_command_line_tools(tmp_path, tiny_parquet, capsys):
    tool = load_tool('tools/dataset_converters/mm_ris.py')
    assert tool.main(['to-folder', str(tiny_parquet), str(tmp_path / 'f')]) == 0
    assert tool.main(['to-parquet', str(tmp_path / 'f'), str(tmp_path / 'p.parquet')]) == 0
    assert len(MMRISDataset(str(tmp_path / 'p.parquet'))) == 24
    bad = corrupt(tiny_parquet, tmp_path / 'bad.parquet', 2, infrared_image=b'xx')
    assert tool.main(['check', str(bad)]) == 1
    assert '1 invalid row(s)' in capsys.readouterr().out
    make = load_tool('tools/dataset_converters/make_synthetic_mmris.py')
    make.main([str(tmp_path / 'syn'), '--train', '6', '--val', '3', '--test', '0',
               '--size', '48'])
    assert sorted(p.name for p in (tmp_path / 'syn').iterdir()) == \
        ['mm_ris_train.parquet', 'mm_ris_val.parquet']
    assert pq.ParquetFile(str(tmp_path / 'syn' / 'mm_ris_val.parquet')).metadata.num_rows == 3


def test_benchmark_pipeline_tool(tmp_path, minilm_path):
    bench = load_tool('tools/analysis_tools/benchmark_pipeline.py')
    results = bench.main(['--config', str(REPO / 'configs/_base_/datasets/mm-ris_480x480.py'),
                          '--rows', '6', '--size', '64', '--workers', '0',
                          '--batch-size', '2', '--tokenizer', minilm_path,
                          '--out', str(tmp_path / 'b.json')])
    assert results[0]['samples'] == 4 and results[0]['samples_per_s'] > 0
    assert json.loads((tmp_path / 'b.json').read_text())['results'] == results
