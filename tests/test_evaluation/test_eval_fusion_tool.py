"""tools/eval_fusion.py on real TNO triples: pairing, table, JSON, errors."""
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from mmrisfusion.evaluation import FUSION_METRICS

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'eval_fusion.py'
NAMES = ['07', '19', '20']  # the smallest TNO pairs


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('eval_fusion', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules['eval_fusion'] = module  # so that --workers can pickle its functions
    yield module
    del sys.modules['eval_fusion']


@pytest.fixture()
def folders(data_dir, tmp_path):
    """ir/, vi/ and fused/ with three TNO triples; the fused ones saved as .bmp to show
    that pairing goes by stem."""
    import cv2
    paths = {}
    for role, source in (('ir', data_dir / 'ivif' / 'tno' / 'ir'),
                         ('vi', data_dir / 'ivif' / 'tno' / 'vi'),
                         ('fused', data_dir / 'fusion_metrics' / 'tno_mean')):
        folder = tmp_path / role
        folder.mkdir()
        for name in NAMES:
            if role == 'fused':
                cv2.imwrite(str(folder / f'{name}.bmp'), cv2.imread(str(source / f'{name}.png')))
            else:
                shutil.copy(source / f'{name}.png', folder / f'{name}.png')
        paths[role] = folder
    return paths


def _run(tool, monkeypatch, *args):
    monkeypatch.setattr(sys, 'argv', ['eval_fusion.py', *map(str, args)])
    tool.main()


def test_scores_match_the_reference_and_are_written(tool, folders, data_dir, tmp_path,
                                                    monkeypatch, capsys):
    out = tmp_path / 'out' / 'scores.json'
    _run(tool, monkeypatch, '--ir', folders['ir'], '--vi', folders['vi'], '--fused',
         folders['fused'], '--out', out)
    printed = capsys.readouterr().out
    assert 'mean' in printed and 'SSIM_dr2' in printed and '3 images scored' in printed
    result = json.loads(out.read_text())
    assert result['metrics'] == list(FUSION_METRICS)
    assert sorted(result['images']) == NAMES
    with open(data_dir / 'fusion_metrics' / 'tno_reference.json') as file:
        reference = json.load(file)['images']['tno_mean']
    for name in NAMES:
        for metric, expected in reference[f'{name}.png'].items():
            assert result['images'][name][metric] == pytest.approx(expected, rel=1e-4), (
                name, metric)
    for metric in FUSION_METRICS:
        mean = sum(result['images'][name][metric] for name in NAMES) / len(NAMES)
        assert result['means'][metric] == pytest.approx(mean)


def test_metric_subset_and_workers_give_the_same_values(tool, folders, tmp_path,
                                                        monkeypatch):
    one, two = tmp_path / 'one.json', tmp_path / 'two.json'
    common = ['--ir', folders['ir'], '--vi', folders['vi'], '--fused', folders['fused'],
              '--metrics', 'EN', 'VIF', 'Nabf']
    _run(tool, monkeypatch, *common, '--out', one, '--workers', '1')
    _run(tool, monkeypatch, *common, '--out', two, '--workers', '2')
    first, second = json.loads(one.read_text()), json.loads(two.read_text())
    assert first['metrics'] == ['EN', 'VIF', 'Nabf']
    assert set(first['images']['07']) == {'EN', 'VIF', 'Nabf'}
    assert first['images'] == second['images']


def test_unmatched_names_are_listed(tool, folders, monkeypatch):
    (folders['fused'] / '07.bmp').unlink()
    shutil.copy(folders['ir'] / '19.png', folders['ir'] / 'extra.png')
    with pytest.raises(SystemExit, match='(?s)missing from --fused: 07, extra.*'
                                         'missing from --vi: extra'):
        _run(tool, monkeypatch, '--ir', folders['ir'], '--vi', folders['vi'], '--fused',
             folders['fused'])


def test_missing_folder_and_size_mismatch(tool, folders, tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match='nowhere is not a folder'):
        _run(tool, monkeypatch, '--ir', tmp_path / 'nowhere', '--vi', folders['vi'],
             '--fused', folders['fused'])
    shutil.copy(folders['ir'] / '19.png', folders['ir'] / '07.png')  # 19 is 270 x 360
    with pytest.raises(SystemExit, match='07: sizes differ'):
        _run(tool, monkeypatch, '--ir', folders['ir'], '--vi', folders['vi'], '--fused',
             folders['fused'])


def test_tool_imports_neither_torch_nor_openmmlab(folders, tmp_path):
    """The command stays light: its start-up imports numpy and OpenCV, not torch, mmengine,
    mmcv or mmseg (they took 2 of its 3 seconds), and it still scores."""
    import os
    import subprocess
    probe = (
        'import runpy, sys\n'
        f'sys.argv = ["eval_fusion.py", "--ir", {str(folders["ir"])!r}, "--vi", '
        f'{str(folders["vi"])!r}, "--fused", {str(folders["fused"])!r}, "--metrics", "EN"]\n'
        f'runpy.run_path({str(TOOL)!r}, run_name="__main__")\n'
        'heavy = {"torch", "mmengine", "mmcv", "mmseg"} & {m.split(".")[0] for m in sys.modules}\n'
        'print("heavy:", sorted(heavy))\n')
    env = dict(os.environ, PYTHONPATH=str(TOOL.parents[1]))
    proc = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'heavy: []' in proc.stdout, proc.stdout[-2000:]
    assert '3 images scored' in proc.stdout
def test_16_bit_images_need_their_bit_depth(tool, folders, tmp_path, monkeypatch):
    """A 12-bit IR image stored in a 16-bit PNG: refused without --bit-depth (OpenCV's
    8-bit reading keeps the top byte, a 16 times darker image), scored as its 8-bit
    original with --bit-depth 12."""
    import cv2

    from mmrisfusion.evaluation import imread_gray
    for path in (*folders['ir'].iterdir(), *folders['fused'].iterdir()):
        assert np.array_equal(tool.read_gray(path), imread_gray(str(path)))  # 8 bits: as ever
    eight_bit = tmp_path / 'eight.json'
    common = ['--vi', folders['vi'], '--fused', folders['fused'], '--metrics', 'MI', 'VIF', 'CC']
    _run(tool, monkeypatch, '--ir', folders['ir'], *common, '--out', eight_bit)
    ir12 = tmp_path / 'ir12'
    ir12.mkdir()
    for path in folders['ir'].iterdir():
        ir = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float64)
        cv2.imwrite(str(ir12 / path.name), np.round(ir * 4095 / 255).astype(np.uint16))
    # Every image is 16-bit; the first by stem is named, whichever worker fails first.
    with pytest.raises(SystemExit, match=r'ir12/07\.png is a 16-bit image.*--bit-depth'):
        _run(tool, monkeypatch, '--ir', ir12, *common)
    with pytest.raises(SystemExit, match=r'values up to 4095, above 1023.*check --bit-depth'):
        _run(tool, monkeypatch, '--ir', ir12, *common, '--bit-depth', '10')
    twelve_bit = tmp_path / 'twelve.json'
    _run(tool, monkeypatch, '--ir', ir12, *common, '--bit-depth', '12', '--out', twelve_bit)
    scores = json.loads(twelve_bit.read_text())
    assert scores['images'] == json.loads(eight_bit.read_text())['images']
    assert scores['bit_depth'] == 12


def test_undefined_values_are_null_not_nan(tool, folders, tmp_path, monkeypatch, capsys):
    """A constant fused image has no correlation: the JSON says null (NaN is not JSON) and
    the metric gets no mean."""
    import cv2
    path = next(folders['fused'].glob('07.*'))
    cv2.imwrite(str(path), np.full_like(cv2.imread(str(path)), 128))
    out = tmp_path / 'scores.json'
    _run(tool, monkeypatch, '--ir', folders['ir'], '--vi', folders['vi'], '--fused',
         folders['fused'], '--metrics', 'EN', 'CC', '--out', out)
    assert 'CC is not defined for 07' in capsys.readouterr().out

    def no_constants(name):
        raise AssertionError(f'{name} in the JSON')

    scores = json.loads(out.read_text(), parse_constant=no_constants)
    assert scores['images']['07']['CC'] is None and scores['images']['19']['CC'] is not None
    assert scores['means']['CC'] is None and scores['undefined'] == {'CC': ['07']}
    assert scores['means']['EN'] == pytest.approx(
        np.mean([scores['images'][name]['EN'] for name in NAMES]))
