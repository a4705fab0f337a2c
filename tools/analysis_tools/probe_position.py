"""Linear probe: can a language-aware backbone's features tell where an object is?

For every test row, the referred object's features are averaged over its mask at each stage
(the visual stream that enters the stage's PWAM, and the PWAM's output ``F``), and a ridge
regression from those averages to the object's normalised horizontal centre is fitted on the
first half of the rows (its penalty chosen by 5-fold cross-validation there) and scored (R^2)
on the second half. R^2 near 0: the features do not
know the absolute x-coordinate, so "the leftmost dog" cannot be told apart from "the dog";
near 1: they do. The same probe on the pixels themselves (each pixel's feature -> its x)
shows whether the position is there at all.

Example:
    python tools/analysis_tools/probe_position.py CONFIG CHECKPOINT --rows 400
"""
import argparse
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmrisfusion.apis import init_model
from mmrisfusion.datasets import ris_collate
from mmrisfusion.registry import DATASETS

PENALTIES = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # ridge penalties tried, on standardised features


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='weights to probe')
    parser.add_argument('--data-path', default=None,
                        help='parquet file of the rows (default: the config\'s test split)')
    parser.add_argument('--rows', type=int, default=400, help='rows to use (default 400)')
    parser.add_argument('--batch-size', type=int, default=32)
    return parser.parse_args()


def ridge_r2(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
             test_y: np.ndarray, penalty: float) -> float:
    """R^2 on the test rows of a ridge regression fitted on the train rows.

    Args:
        train_x (np.ndarray): Features (N, C).
        train_y (np.ndarray): Targets (N,).
        test_x (np.ndarray): Features (M, C).
        test_y (np.ndarray): Targets (M,).
        penalty (float): Ridge penalty on the standardised features.

    Returns:
        float: ``1 - SSE / SST`` on the test rows.
    """
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a = (train_x - mean) / std
    b = (test_x - mean) / std
    a = np.concatenate([a, np.ones((len(a), 1))], 1)
    b = np.concatenate([b, np.ones((len(b), 1))], 1)
    reg = penalty * len(a) * np.eye(a.shape[1])
    reg[-1, -1] = 0
    w = np.linalg.solve(a.T @ a + reg, a.T @ train_y)
    pred = b @ w
    return float(1 - ((pred - test_y)**2).sum() / ((test_y - test_y.mean())**2).sum())


def probe_r2(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
             test_y: np.ndarray) -> float:
    """:func:`ridge_r2` with the penalty chosen by 5-fold cross-validation on the train rows.

    Args:
        train_x (np.ndarray): Features (N, C).
        train_y (np.ndarray): Targets (N,).
        test_x (np.ndarray): Features (M, C).
        test_y (np.ndarray): Targets (M,).

    Returns:
        float: R^2 on the test rows.
    """
    folds = np.arange(len(train_x)) % 5

    def cv_score(penalty: float) -> float:
        return float(np.mean([ridge_r2(train_x[folds != k], train_y[folds != k],
                                       train_x[folds == k], train_y[folds == k], penalty)
                              for k in range(5)]))

    best = max(PENALTIES, key=cv_score)
    return ridge_r2(train_x, train_y, test_x, test_y, best)


def main() -> None:
    """Collect the features, fit the probes, print R^2 per stage."""
    args = parse_args()
    cfg = Config.fromfile(args.config)
    model = init_model(cfg, args.checkpoint)
    data_cfg = dict(cfg.test_dataset) if 'test_dataset' in cfg else dict(
        cfg.test_dataloader.dataset)
    if args.data_path is not None:
        data_cfg['data_path'] = args.data_path
    dataset = DATASETS.build(data_cfg)
    captured: Dict[str, List[torch.Tensor]] = {}

    def hook(stage: int):
        def save(module, inputs, output):
            captured.setdefault(f'stage{stage} visual', []).append(inputs[0].detach())
            captured.setdefault(f'stage{stage} PWAM F', []).append(output.detach())
        return save

    for i, pwam in enumerate(model.backbone.pwams):
        pwam.register_forward_hook(hook(i))
    masks, num = [], min(args.rows, len(dataset))
    with torch.no_grad():
        for start in range(0, num, args.batch_size):
            batch = ris_collate([dataset[i] for i in range(start, min(num, start +
                                                                      args.batch_size))])
            data = model.data_preprocessor(batch, False)
            model.extract_feat(data['inputs'])
            masks += [s.gt_sem_seg.data.float() for s in data['data_samples']]
    mask = torch.stack(masks)  # (N, 1, H, W)
    width = mask.shape[-1]
    xs = torch.arange(width, dtype=torch.float32) / (width - 1)
    centre = ((mask * xs).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp(min=1)).numpy()
    half = num // 2
    print(f'{num} rows ({half} to fit, {num - half} to score); R^2 of a ridge probe for the '
          'normalised x-coordinate')
    print(f'{"features":<20} {"object centre":>14} {"pixel x":>9}')
    for name, chunks in captured.items():
        tokens = torch.cat(chunks).float()  # (N, h*w, C)
        side = int(round(tokens.shape[1]**0.5))
        small = F.adaptive_avg_pool2d(mask, side).flatten(1)  # (N, h*w) mask share
        pooled = (small.unsqueeze(-1) * tokens).sum(1) / small.sum(1, keepdim=True).clamp(
            min=1e-6)
        obj_r2 = probe_r2(pooled[:half].numpy(), centre[:half], pooled[half:].numpy(),
                          centre[half:])
        pix_x = ((torch.arange(side, dtype=torch.float32) + 0.5) / side).repeat(side)
        # at most 64 random pixels per row
        pick = torch.randperm(side * side, generator=torch.Generator().manual_seed(0))[:64]
        pix, pix_target = tokens[:, pick], pix_x[pick].expand(len(tokens), -1)
        pix_r2 = probe_r2(pix[:half].flatten(0, 1).numpy(), pix_target[:half].flatten().numpy(),
                          pix[half:].flatten(0, 1).numpy(), pix_target[half:].flatten().numpy())
        print(f'{name:<20} {obj_r2:>14.3f} {pix_r2:>9.3f}')


if __name__ == '__main__':
    main()
