"""Penalise the mask of the side-swapped expression on the referred object."""
import os.path as osp
from typing import Iterable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from torch import Tensor

from mmrisfusion.datasets.transforms import load_tokenizer
from mmrisfusion.registry import MODELS

from .loss_term import BaseLossTerm


@MODELS.register_module()
class SideSwapLoss(BaseLossTerm):
    """The referred object must not be the answer to the expression with its sides swapped.

    "The dog on the left" and "the dog on the right" name different dogs of one image; a
    model that ignores the side words segments both for either, which Dice on the target
    alone tolerates (0.67 for two dogs of one size). This term swaps the side words of some
    expressions of the batch (:meth:`swap`), runs the network on them with the same images
    (the segmentor does), and penalises how much of the original target the swapped
    expression's mask covers (:meth:`forward`): only reading the side words lowers it.

    Expressions with an ordinal word are not side-swapped: "the second dog from the left"
    and "the second dog from the right" are the same dog when there are three. With
    ``ordinal_words`` their ordinal is replaced instead ("the third dog from the left" is
    never the second one; it may be no dog at all, which the term also accepts). Relations
    ("left of the car") keep a different target: the objects on the other side of the
    anchor. Not in LAVT or RIS-FUSION.

    Args:
        tokenizer_path (str): The tokenizer's local folder (the pipeline's), to find the
            token ids of the words below; each word must be one token.
        swap_words (Sequence[tuple[str, str]]): Pairs of words swapped in both directions.
            Defaults to (('left', 'right'),).
        skip_words (Sequence[str]): Expressions with any of these are not swapped.
            Defaults to ('second', 'third', 'fourth').
        max_rows (int): At most this many expressions per batch are swapped (a random
            choice): each costs one more sample of network work. Defaults to 4.
        end_iter (int, optional): The term, and its extra samples, stop at this training
            iteration (the runner's, from the message hub; outside a runner the term is
            always on). Early on it makes the model read the side words, which it keeps
            after: on the demo, stopping at 700 of 1300 iterations kept position P@0.5 at
            45.3% (46.1% with the term throughout, the same run until 700), with cheaper
            steps after 700. Defaults to None (never stops).
        ordinal_words (Sequence[tuple[str, str]]): ``(word, replacement)`` pairs for the
            expressions with an ordinal: an expression with one of the words gets them
            replaced instead of its side words swapped, and is among those ``max_rows``
            draws from. Without them the term leaves ordinal expressions out; on the demo
            they then reached 17.6% to 39.7% P@0.5 from run to run, the other position
            expressions 55.0% to 58.3%. With them (and ``max_rows=3``) the demo scored
            39.7% on the ordinals and 60.3 mIoU in its `make demo` run; they remain the
            part that varies (17.6% and 33.8% in two other runs). E.g. ``(('second',
            'third'), ('third', 'second'), ('fourth', 'third'))``. Defaults to () (none).
        loss_weight (float): Factor on the term. Defaults to 1.0.
        loss_name (str): Name of the term in the logs. Defaults to 'loss_side_swap'.
    """

    def __init__(self,
                 tokenizer_path: str,
                 swap_words: Sequence[Tuple[str, str]] = (('left', 'right'), ),
                 skip_words: Sequence[str] = ('second', 'third', 'fourth'),
                 max_rows: int = 4,
                 end_iter: Optional[int] = None,
                 ordinal_words: Sequence[Tuple[str, str]] = (),
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_side_swap') -> None:
        super().__init__(loss_weight, loss_name)
        if not osp.isdir(tokenizer_path):
            raise FileNotFoundError(
                f'SideSwapLoss: the tokenizer folder {tokenizer_path!r} does not exist; give '
                "the one the pipeline's TokenizeText uses (its tokenizer_path)")
        tokenizer = load_tokenizer(tokenizer_path)

        def token_id(word: str) -> int:
            tokens = tokenizer.tokenize(word)
            if len(tokens) != 1:
                raise ValueError(f'SideSwapLoss: {word!r} is {len(tokens)} tokens {tokens} '
                                 f'for the tokenizer in {tokenizer_path!r}; use one-token '
                                 'words')
            return tokenizer.convert_tokens_to_ids(tokens[0])

        def token_ids(words: Iterable[str]) -> Tensor:
            return torch.tensor([token_id(w) for w in words], dtype=torch.long).reshape(-1)

        if max_rows < 1:
            raise ValueError(f'SideSwapLoss: max_rows must be >= 1, got {max_rows}')
        self.register_buffer('swap_from', token_ids(w for pair in swap_words for w in pair),
                             persistent=False)
        self.register_buffer('swap_to', token_ids(w for a, b in swap_words for w in (b, a)),
                             persistent=False)
        self.register_buffer('skip_ids', token_ids(skip_words), persistent=False)
        self.register_buffer('ordinal_from', token_ids(a for a, _ in ordinal_words),
                             persistent=False)
        self.register_buffer('ordinal_to', token_ids(b for _, b in ordinal_words),
                             persistent=False)
        self.max_rows = max_rows
        self.end_iter = end_iter

    def active(self) -> bool:
        """Whether the runner's iteration is before ``end_iter`` (always, outside a runner)."""
        if self.end_iter is None:
            return True
        current = MessageHub.get_current_instance().get_info('iter')
        return current is None or current < self.end_iter

    def swap(self, token_ids: Tensor, token_mask: Tensor) -> Tuple[Tensor, Tensor]:
        """Choose expressions to swap and swap their side words (or replace their ordinal).

        Args:
            token_ids (Tensor): (B, T) token ids.
            token_mask (Tensor): (B, T), 1 for tokens and 0 for padding.

        Returns:
            tuple[Tensor, Tensor]: ``rows`` (K,) the indices of the chosen expressions and
            their swapped token ids (K, T); K may be 0.
        """
        valid = token_mask.bool()
        side = torch.isin(token_ids, self.swap_from) & valid
        skip = torch.isin(token_ids, self.skip_ids) & valid
        ordinal = (torch.isin(token_ids, self.ordinal_from) & valid).any(1)
        rows = torch.nonzero((side.any(1) & ~skip.any(1)) | ordinal)[:, 0]
        if rows.numel() > self.max_rows:
            rows = rows[torch.randperm(rows.numel(), device=rows.device)[:self.max_rows]]
        ids = token_ids[rows]
        side_swapped = replace_tokens(ids, self.swap_from, self.swap_to)
        ordinal_replaced = replace_tokens(ids, self.ordinal_from, self.ordinal_to)
        return rows, torch.where(ordinal[rows, None], ordinal_replaced, side_swapped)

    def forward(self, seg_logits: Tensor, targets: Tensor, num_samples: int) -> Tensor:
        """The share of each target that the swapped expressions' masks cover, summed.

        Divided by the batch's number of samples, not of swapped ones: a swapped expression
        then weighs like one sample's Dice term. (Averaged over the few swapped ones, the
        term outweighed the Dice of the whole batch, and the model learned to leave every
        expression with a side word empty.)

        Args:
            seg_logits (Tensor): Logits (K, 2, h, w) for the swapped expressions; as for the
                Dice loss, the mask is the sigmoid of the class-1 logit.
            targets (Tensor): The original expressions' labels (K, H, W): 1 on the target,
                0 elsewhere, 255 ignored.
            num_samples (int): Samples in the batch.

        Returns:
            Tensor: The weighted term (scalar).
        """
        if seg_logits.shape[-2:] != targets.shape[-2:]:
            seg_logits = F.interpolate(seg_logits.float(), size=targets.shape[-2:],
                                       mode='bilinear', align_corners=False)
        prob = torch.sigmoid(seg_logits[:, 1].float())
        target = (targets == 1).float()
        covered = (prob * target).sum((1, 2)) / target.sum((1, 2)).clamp(min=1)
        return self.loss_weight * covered.sum() / num_samples


def replace_tokens(ids: Tensor, old: Tensor, new: Tensor) -> Tensor:
    """``ids`` with every ``old[i]`` replaced by ``new[i]`` (one pass: no chains)."""
    match = ids[..., None] == old  # (..., T, len(old))
    return torch.where(match.any(-1), (match * new).sum(-1), ids)
