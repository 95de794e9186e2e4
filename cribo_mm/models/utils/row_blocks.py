# Copyright (c) cribo-mm contributors. All rights reserved.
"""Row-block sizes for passes over wide (N, out) matrices.

Softmax-type passes over (N, 65536) float32 matrices are bound by memory
traffic on a CPU: processed a few rows at a time, their temporaries stay in
the cache and every matrix is read once.
"""
import torch

__all__ = ['BLOCK_ELEMENTS', 'block_rows_for']

# float32 elements of one (rows, out) block temporary on a CPU: 2 MiB, a
# few of which fit the L2/L3 cache of a core
BLOCK_ELEMENTS = 1 << 19


def block_rows_for(width: int, device: torch.device) -> int:
    """Rows per block: ~2 MiB of float32 on a CPU (cache-sized); 32x that
    on an accelerator, whose memory is fast and whose launches are not free.

    Args:
        width (int): Row length (``out_dim``).
        device (torch.device): Where the blocks are computed.

    Returns:
        int: At least 1.
    """
    elements = BLOCK_ELEMENTS * (1 if torch.device(device).type == 'cpu'
                                 else 32)
    return max(1, elements // max(int(width), 1))
