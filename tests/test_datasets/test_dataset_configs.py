"""Every dataset base config builds its dataloaders' datasets and yields model-ready batches
(on tiny stand-in data of the right layout)."""
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from ris_data_helpers import read_rows, write_rows

from mmrisfusion.datasets.mm_ris_convert import parquet_to_folder
from mmrisfusion.models.data_preprocessor import RISDataPreProcessor
from mmrisfusion.registry import DATASETS

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / 'configs/_base_/datasets').glob('*.py'))


def test_configs_found():
    assert len(CONFIGS) >= 3, CONFIGS


@pytest.fixture(scope='module')
def stand_ins(tiny_parquet, tmp_path_factory, data_dir):
    """Tiny data in each config's layout: parquet, the folder layout, and TNO."""
    folder = tmp_path_factory.mktemp('folder')
    parquet_to_folder(str(tiny_parquet), str(folder))
    for split in ('train', 'val', 'test'):
        (folder / f'{split}.jsonl').write_text((folder / 'refs.jsonl').read_text())
    return dict(MMRISDataset=dict(data_root='', data_path=str(tiny_parquet)),
                RISFolderDataset=dict(data_root=str(folder)),
                IVIFFolderDataset=dict(data_root=str(data_dir / 'ivif' / 'tno')))


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.stem)
def test_dataset_config_builds_and_loads(config, stand_ins, minilm_path):
    init_default_scope('mmrisfusion')
    cfg = Config.fromfile(str(config))
    loaders = [k for k in ('train_dataloader', 'val_dataloader', 'test_dataloader') if k in cfg]
    assert loaders
    for key in loaders:
        ds_cfg = cfg[key].dataset.copy()
        ds_cfg.update(stand_ins[ds_cfg.type])
        for step in ds_cfg.pipeline:
            if step.type == 'TokenizeText':
                step.tokenizer_path = minilm_path
        dataset = DATASETS.build(ds_cfg)
        batch = pseudo_collate([dataset[i] for i in range(2)])
        out = RISDataPreProcessor(size_divisor=32)(batch, training=key == 'train_dataloader')
        assert out['inputs']['vis'].shape[:2] == (2, 3)
        if ds_cfg.type != 'IVIFFolderDataset':
            assert out['inputs']['token_ids'].shape == (2, 20)
            width, height = cfg.img_scale
            assert out['inputs']['vis'].shape[-2:] == (height, width)


def test_mm_ris_config_reads_each_split_from_the_released_folder(tmp_path, tiny_parquet):
    """MM-RIS as released: the train split in two parts beside val and test in one folder."""
    rows = read_rows(tiny_parquet)
    sizes = {'mm_ris_train_part1.parquet': 7, 'mm_ris_train_part2.parquet': 5,
             'mm_ris_val.parquet': 3, 'mm_ris_test.parquet': 2}
    for name, size in sizes.items():
        write_rows(tmp_path / name, {k: v[:size] for k, v in rows.items()})
    init_default_scope('mmrisfusion')
    cfg = Config.fromfile(str(REPO / 'configs/_base_/datasets/mm-ris_480x480.py'))
    expected = dict(train_dataloader=['mm_ris_train_part1.parquet', 'mm_ris_train_part2.parquet'],
                    val_dataloader=['mm_ris_val.parquet'],
                    test_dataloader=['mm_ris_test.parquet'])
    for key, names in expected.items():
        ds_cfg = cfg[key].dataset.copy()
        ds_cfg.update(data_root=str(tmp_path), pipeline=[])
        dataset = DATASETS.build(ds_cfg)
        assert [Path(f).name for f in dataset.files] == names
        assert len(dataset) == sum(sizes[name] for name in names)
