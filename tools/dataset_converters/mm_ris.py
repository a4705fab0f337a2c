"""Convert MM-RIS between its parquet format and the image-folder layout; re-chunk; check.

Examples:
    # parquet (a file, a folder of parts or a quoted pattern) -> vi/ ir/ mask/ refs.jsonl
    python tools/dataset_converters/mm_ris.py to-folder data/mm_ris/mm_ris_test.parquet \
        data/mm_ris_test_folder
    # the folder layout (yours or converted) -> one parquet file in the official schema
    python tools/dataset_converters/mm_ris.py to-parquet data/my_ris data/my_ris.parquet
    # large row groups make random reads slow: rewrite with 64-row groups
    python tools/dataset_converters/mm_ris.py rechunk 'data/mm_ris/mm_ris_train_part*.parquet' \
        data/mm_ris/mm_ris_train.parquet
    # decode every row and list the invalid and suspicious ones (file, row, image_name,
    # problem); exits with 1 when there is any
    python tools/dataset_converters/mm_ris.py check data/mm_ris/mm_ris_test.parquet \
        --tokenizer data/pretrained/bert-base-uncased
"""
import argparse
import sys
from collections import Counter

from mmrisfusion.datasets.mm_ris_convert import (
    CHECK_KINDS,
    check_mm_ris,
    folder_to_parquet,
    parquet_to_folder,
    rechunk_parquet,
)
from mmrisfusion.datasets.transforms.loading import MAX_PIXELS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('to-folder', help='parquet -> vi/, ir/, mask/, refs.jsonl')
    p.add_argument('src', help='parquet file, folder of parts or quoted glob pattern')
    p.add_argument('out_dir')
    p.add_argument('--ann-name', default='refs.jsonl')
    p.add_argument('--skip-invalid', action='store_true', help='log and skip invalid rows')
    p = sub.add_parser('to-parquet', help='folder layout -> one parquet file')
    p.add_argument('data_root')
    p.add_argument('out_file')
    p.add_argument('--ann-file', default='refs.jsonl')
    p.add_argument('--row-group-size', type=int, default=64)
    p.add_argument('--skip-invalid', action='store_true', help='log and skip invalid lines')
    p = sub.add_parser('rechunk', help='rewrite parquet with small row groups')
    p.add_argument('src')
    p.add_argument('out_file')
    p.add_argument('--row-group-size', type=int, default=64)
    p = sub.add_parser('check', help='decode every row, list invalid and suspicious ones')
    p.add_argument('src')
    p.add_argument('--tokenizer', help='tokenizer folder of the config: also list expressions '
                   'it knows no word of')
    p.add_argument('--max-length', type=int, default=20,
                   help='tokens the config keeps (TokenizeText.max_length)')
    p.add_argument('--max-pixels', type=int, default=MAX_PIXELS,
                   help='larger images and masks are invalid (as LoadRISImages.max_pixels)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == 'to-folder':
        counts = parquet_to_folder(args.src, args.out_dir, args.ann_name, args.skip_invalid)
        print(f'wrote {counts["images"]} image pairs, {counts["objects"]} masks and '
              f'{counts["expressions"]} expressions to {args.out_dir}')
    elif args.command == 'to-parquet':
        rows = folder_to_parquet(args.data_root, args.out_file, args.ann_file,
                                 args.row_group_size, args.skip_invalid)
        print(f'wrote {rows} rows to {args.out_file}')
    elif args.command == 'rechunk':
        rows = rechunk_parquet(args.src, args.out_file, args.row_group_size)
        print(f'wrote {rows} rows to {args.out_file}')
    else:
        problems = check_mm_ris(args.src, args.tokenizer, args.max_length, args.max_pixels)
        for kind, message in problems:
            print(f'{kind}: {message}')
        counts = Counter(kind for kind, _ in problems)
        print(f'{counts["invalid"]} invalid row(s); suspicious: ' + ', '.join(
            f'{counts[kind]} {kind}' for kind in CHECK_KINDS[1:])
            + ('' if args.tokenizer else ' (expressions not tokenised: no --tokenizer)'))
        return 1 if problems else 0
    return 0


if __name__ == '__main__':
    sys.exit(main())
