# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage 2a: the nearest images of every image, from their embeddings."""
from typing import Callable, Optional

import numpy as np

__all__ = ['knn_from_embeddings']


def knn_from_embeddings(
        embeddings: np.ndarray,
        k: int = 10,
        block_size: int = 1024,
        progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """Cosine k nearest neighbours of every row, itself excluded.

    As in ORL: the top ``k + 1`` by cosine similarity, the first dropped
    (the image itself; ties are broken by row order with the query placed
    first). Rows are processed in blocks, so memory stays at
    ``block_size x N`` similarities (COCO: N = 118k) instead of ``N x N``;
    the result equals a full stable sort of each row.

    Args:
        embeddings (np.ndarray): Shape (N, D), N > k.
        k (int): Neighbours per image. Defaults to 10.
        block_size (int): Query rows per block. Defaults to 1024.
        progress (Callable, optional): Called with the number of rows done
            after every block.

    Returns:
        np.ndarray: Rows of the neighbours, shape (N, k), int64, by
        decreasing similarity.
    """
    emb = np.asarray(embeddings, np.float64)
    if emb.ndim != 2 or len(emb) <= k:
        raise ValueError(f'need (N, D) embeddings with N > k={k}, got shape '
                         f'{emb.shape}')
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    n = len(emb)
    out = np.empty((n, k), np.int64)
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        sim = emb[start:stop] @ emb.T
        local = np.arange(stop - start)
        sim[local, local + start] = np.inf  # the image itself is first
        top = np.argpartition(-sim, k, axis=1)[:, :k + 1]
        vals = np.take_along_axis(sim, top, axis=1)
        order = np.lexsort((top, -vals), axis=-1)
        best = np.take_along_axis(top, order, axis=1)
        # A tie at the (k+1)-th value may have left out a lower row index
        # that a stable sort puts first: redo those rows in full.
        ties = (sim >= vals.min(axis=1, keepdims=True)).sum(axis=1) > k + 1
        for r in np.flatnonzero(ties):
            best[r] = np.argsort(-sim[r], kind='stable')[:k + 1]
        out[start:stop] = best[:, 1:]
        if progress is not None:
            progress(stop)
    return out
