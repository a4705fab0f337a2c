"""Keep freed memory in the process, so large buffers are reused without page faults.

glibc's ``malloc`` serves large requests (above 128 KiB to 32 MiB, adapting) with fresh
``mmap`` pages and hands them back to the system on ``free``. A training step or an image
metric allocates and frees the same large buffers again and again, so every step pays a page
fault per 4 KiB of them, on virtual machines dearly: zeroing a fresh 94 MiB tensor took 80 ms
here against 12 ms for reused memory, and the first profile of the Swin-B step spent seconds
in ``fill_``/``sqrt``/``add`` of freshly mapped buffers. This module imports only the
standard library, so light tools (``tools/eval_fusion.py``) can load it too.
"""
import ctypes
import sys

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# The largest mmap threshold older glibc versions accept (HEAP_MAX_SIZE / 2 on 64 bit).
_OLD_GLIBC_MAX_MMAP_THRESHOLD = 32 * 2**20


def keep_freed_memory(threshold: int = 2**30) -> bool:
    """Serve allocations below ``threshold`` from the heap and never trim it.

    The resident memory then stays at the process's peak instead of shrinking between steps
    (training and evaluation return to that peak every step anyway). Only glibc has
    ``mallopt``; elsewhere (macOS, musl, Windows) nothing changes.

    Args:
        threshold (int): Allocations below this many bytes come from the heap and are reused.
            Defaults to 1 GiB (glibc versions that refuse more than 32 MiB get 32 MiB).

    Returns:
        bool: Whether the allocator was tuned.
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        mallopt = ctypes.CDLL('libc.so.6').mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    if not mallopt(_M_MMAP_THRESHOLD, threshold):
        if not mallopt(_M_MMAP_THRESHOLD, min(threshold, _OLD_GLIBC_MAX_MMAP_THRESHOLD)):
            return False
    return bool(mallopt(_M_TRIM_THRESHOLD, -1))  # -1: never trim (mallopt(3))
