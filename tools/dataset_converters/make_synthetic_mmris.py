"""Write synthetic MM-RIS splits in the official parquet schema (the embedded demo data).

Example:
    python tools/dataset_converters/make_synthetic_mmris.py data/synthetic_mmris \
        --train 2000 --val 300 --test 300 --size 128 --seed 0

Writes ``mm_ris_train.parquet``, ``mm_ris_val.parquet`` and ``mm_ris_test.parquet``;
the same arguments always give the same files (see ``mmrisfusion.datasets.synthetic_mmris``).
"""
import argparse
import os
import time

from mmrisfusion.datasets.synthetic_mmris import make_synthetic_splits


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir')
    parser.add_argument('--train', type=int, default=2000, help='rows of the train split')
    parser.add_argument('--val', type=int, default=300, help='rows of the val split')
    parser.add_argument('--test', type=int, default=300, help='rows of the test split')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--same-category-ratio', type=float, default=0.5,
                        help='share of scenes with two objects of one category')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    start = time.perf_counter()
    splits = {k: v for k, v in (('train', args.train), ('val', args.val),
                                ('test', args.test)) if v > 0}
    files = make_synthetic_splits(args.out_dir, splits, size=args.size, seed=args.seed,
                                  same_category_ratio=args.same_category_ratio)
    for split, path in files.items():
        print(f'{split}: {splits[split]} rows -> {path}')
    print(f'done in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
