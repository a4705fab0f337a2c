"""RISFolderDataset (users' own data) and IVIFFolderDataset (fusion-only pairs)."""
import json
import shutil

import cv2
import numpy as np
import pytest

from mmrisfusion.datasets import (
    InvalidSampleError,
    IVIFFolderDataset,
    LoadRISAnnotation,
    LoadRISImages,
    PackRISInputs,
    RISFolderDataset,
)


@pytest.fixture
def ris_folder(tmp_path):
    """Two image pairs; three referred objects; four expressions."""
    rng = np.random.default_rng(0)
    for sub in ('vi', 'ir', 'mask'):
        (tmp_path / sub).mkdir()
    for name in ('a.png', 'b.jpg'):
        cv2.imwrite(str(tmp_path / 'vi' / name), rng.integers(0, 255, (24, 32, 3), np.uint8))
        cv2.imwrite(str(tmp_path / 'ir' / name), rng.integers(0, 255, (24, 32), np.uint8))
    for mask_name in ('a', 'b_0', 'b_1'):
        cv2.imwrite(str(tmp_path / 'mask' / f'{mask_name}.png'),
                    (rng.uniform(size=(24, 32)) > 0.7).astype(np.uint8) * 255)
    lines = [dict(name='a.png', expressions=['the dog', 'the white dog']),
             dict(name='b_0', image='b.jpg', expression='the car on the left'),
             dict(name='b_1', image='b.jpg', expressions=['the car on the right'])]
    (tmp_path / 'refs.jsonl').write_text('\n'.join(json.dumps(x) for x in lines) + '\n\n')
    return tmp_path


def test_one_sample_per_expression(ris_folder):
    ds = RISFolderDataset(data_root=str(ris_folder),
                          pipeline=[LoadRISImages(), LoadRISAnnotation(), PackRISInputs()])
    assert len(ds) == 4
    assert [ds.get_data_info(i)['text'] for i in range(4)] == \
        ['the dog', 'the white dog', 'the car on the left', 'the car on the right']
    info = ds.get_data_info(3)
    assert info['img_name'] == 'b.jpg' and info['source'] == 'refs.jsonl:line 3 expression 0'
    assert info['seg_map_path'].endswith('mask/b_1.png')
    out = ds[1]
    mask = cv2.imread(str(ris_folder / 'mask' / 'a.png'), cv2.IMREAD_UNCHANGED) > 0
    assert np.array_equal(out['data_samples'].gt_sem_seg.data[0].numpy(), mask)
    assert out['inputs']['vis'].shape == (3, 24, 32)


@pytest.mark.parametrize('line,expected', [
    ('{not json', 'not valid JSON'),
    ('{"expressions": ["x"]}', 'non-empty string "name"'),
    ('{"name": "a.png"}', 'no "expressions"'),
    ('{"name": "a.png", "expressions": []}', 'non-empty list of non-empty strings'),
    ('{"name": "a.png", "expressions": ["ok", 3]}', 'non-empty list of non-empty strings'),
    ('{"name": "a.png", "expression": "  "}', 'non-empty list of non-empty strings'),
    ('{"name": "zz.png", "expressions": ["x"]}', "vis file '"),
])
def test_bad_lines(ris_folder, line, expected):
    path = ris_folder / 'refs.jsonl'
    path.write_text(path.read_text() + line + '\n')
    with pytest.raises(InvalidSampleError, match='refs.jsonl:line 5') as info:
        RISFolderDataset(data_root=str(ris_folder))
    assert expected in str(info.value)
    ds = RISFolderDataset(data_root=str(ris_folder), skip_invalid=True)
    assert len(ds) == 4 and ds.num_skipped == 1 and 'line 5' in ds.skipped[0]


def test_missing_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='refs.jsonl'):
        RISFolderDataset(data_root=str(tmp_path))


@pytest.mark.parametrize('dataset,names', [
    ('tno', ['07.png', '19.png', '20.png']),  # PNG, IR stored as RGB
    ('roadscene', ['FLIR_00006.jpg', 'FLIR_00018.jpg', 'FLIR_00211.jpg', 'FLIR_00977.jpg']),
    ('msrs', ['00020N.png']),  # PNG, IR stored as gray
])
def test_ivif_folder_benchmarks(data_dir, dataset, names):
    """Real pairs of each benchmark layout load at their size, IR as one channel."""
    root = data_dir / 'ivif' / dataset
    ds = IVIFFolderDataset(data_root=str(root),
                           pipeline=[LoadRISImages(ir_channels=1), PackRISInputs()])
    assert [ds.get_data_info(i)['img_name'] for i in range(len(ds))] == names
    for i, name in enumerate(names):
        out = ds[i]
        height, width = cv2.imread(str(root / 'vi' / name)).shape[:2]
        assert out['inputs']['vis'].shape == (3, height, width)
        assert out['inputs']['ir'].shape == (1, height, width)
        assert 'gt_sem_seg' not in out['data_samples'] and 'text' not in out['data_samples']
        assert out['data_samples'].img_name == name


def test_ivif_folder_with_name_list(data_dir):
    ds = IVIFFolderDataset(data_root=str(data_dir / 'ivif' / 'roadscene'),
                           ann_file='test_split.txt')
    assert [ds.get_data_info(i)['img_name'] for i in range(len(ds))] == ['FLIR_00211.jpg',
                                                                         'FLIR_00977.jpg']
    assert ds.get_data_info(1)['source'] == 'test_split.txt:line 2'


def test_ivif_unpaired_name(tmp_path, data_dir):
    shutil.copytree(data_dir / 'ivif' / 'tno', tmp_path / 'tno')
    lonely = sorted((tmp_path / 'tno' / 'ir').iterdir())[0]
    lonely.unlink()
    with pytest.raises(InvalidSampleError, match=f'{lonely.name}.*does not exist'):
        IVIFFolderDataset(data_root=str(tmp_path / 'tno'))
    ds = IVIFFolderDataset(data_root=str(tmp_path / 'tno'), skip_invalid=True)
    assert len(ds) == 2 and ds.num_skipped == 1
    with pytest.raises(FileNotFoundError, match='vi/ and ir/'):
        IVIFFolderDataset(data_root=str(tmp_path / 'nothing'))
