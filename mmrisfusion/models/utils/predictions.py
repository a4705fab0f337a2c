"""From logits to class indices."""
from torch import Tensor


def class_argmax(logits: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """``logits.argmax(dim)``, with two classes as one comparison.

    The result is argmax's (ties give class 0), but on the CPU an argmax over a short
    strided dimension is a slow reduction: 17 ms vs 0.2 ms for ``(16, 2, 128, 128)`` over
    the classes, and 16 ms vs 0.2 ms for one ``(2, 480, 480)`` prediction.

    Args:
        logits (Tensor): Class scores.
        dim (int): The class dimension.
        keepdim (bool): Keep ``dim`` with size 1. Defaults to False.

    Returns:
        Tensor: int64 class indices.
    """
    if logits.shape[dim] != 2:
        return logits.argmax(dim, keepdim=keepdim)
    indices = (logits.select(dim, 1) > logits.select(dim, 0)).long()
    return indices.unsqueeze(dim) if keepdim else indices
