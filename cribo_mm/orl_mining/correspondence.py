# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage 2c: box filter and RoI-pair selection, the correspondence file.

Pure NumPy rules on ``(x, y, w, h)`` boxes; the box embeddings come from a
callable (:class:`cribo_mm.orl_mining.embedding.RoIEmbedder` on a stage-1
network). The file layout is documented and validated in
:mod:`cribo_mm.datasets.orl.annotations`.

* :func:`filter_proposals`: min side 96, max aspect 3, greedy overlap
  <= 0.5 in proposal order, at most 100; the first proposal when none
  survives.
* :func:`select_top_pairs`: top ``max(1, floor(0.1 n))`` entries of the
  flattened similarity matrix, with ``n`` the query image's box count.
"""
import math
from typing import Callable, List, MutableMapping, Optional, Sequence, Tuple

import numpy as np

from cribo_mm.datasets.orl.annotations import DEFAULT_INFO
from cribo_mm.datasets.orl.boxes import box_iou

__all__ = [
    'assemble_correspondence', 'build_correspondence', 'filter_all_proposals',
    'filter_proposals', 'image_pairs', 'select_top_pairs'
]


def filter_proposals(boxes: Sequence[Sequence[float]],
                     min_size: float = 96,
                     max_aspect_ratio: float = 3.,
                     max_iou: float = 0.5,
                     max_num: int = 100) -> List[List[float]]:
    """ORL's proposal filter, greedy in proposal order.

    A box is kept when ``w >= min_size``, ``h >= min_size``,
    ``w / h <= max_aspect_ratio``, ``h / w <= max_aspect_ratio`` and its IoU
    with every box kept so far is ``<= max_iou``; scanning stops once
    ``max_num`` boxes are kept. When no box survives, the first proposal is
    returned alone (so every image keeps at least one box).

    Args:
        boxes (Sequence): Proposals ``(x, y, w, h)``, shape (N, 4), N >= 1.
        min_size (float): Minimum width and height. Defaults to 96.
        max_aspect_ratio (float): Maximum of ``w/h`` and ``h/w``.
            Defaults to 3.
        max_iou (float): Maximum IoU with an already kept box. Defaults
            to 0.5.
        max_num (int): Maximum number of kept boxes. Defaults to 100.

    Returns:
        list[list[float]]: The kept boxes, in proposal order, as given.

    Raises:
        ValueError: ``boxes`` is empty or not of shape (N, 4).
    """
    arr = np.asarray(boxes, np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4 or len(arr) == 0:
        raise ValueError('filter_proposals needs a non-empty (N, 4) array of '
                         f'(x, y, w, h) boxes, got shape {arr.shape}')
    kept: List[int] = []
    for i, (_, _, w, h) in enumerate(arr):
        if len(kept) >= max_num:
            break
        if w < min_size or h < min_size:
            continue
        if w / h > max_aspect_ratio or h / w > max_aspect_ratio:
            continue
        if kept and box_iou(arr[i:i + 1], arr[kept]).max() > max_iou:
            continue
        kept.append(i)
    if not kept:
        kept = [0]
    return [list(boxes[i]) for i in kept]


def select_top_pairs(similarity: np.ndarray,
                     ratio: float = 0.1) -> List[Tuple[int, int]]:
    """Top entries of a box-to-box similarity matrix.

    Keeps the ``max(1, floor(ratio * N))`` largest entries of the flattened
    (N, M) matrix, ``N`` being the query image's box count; a box may appear
    in several pairs. Ties keep the lower flat index first.

    Args:
        similarity (np.ndarray): Shape (N, M), query boxes by neighbour
            boxes.
        ratio (float): Fraction of the query's box count. Defaults to 0.1.

    Returns:
        list[tuple[int, int]]: ``(query_box, neighbour_box)`` indices,
        by decreasing similarity.
    """
    sim = np.asarray(similarity, np.float64)
    if sim.ndim != 2 or sim.size == 0:
        raise ValueError('select_top_pairs needs a non-empty (N, M) matrix, '
                         f'got shape {sim.shape}')
    num = min(max(1, int(math.floor(ratio * sim.shape[0]))), sim.size)
    flat = sim.reshape(-1)
    order = np.argsort(-flat, kind='stable')[:num]
    return [(int(k // sim.shape[1]), int(k % sim.shape[1])) for k in order]


def filter_all_proposals(proposals: Sequence[Sequence[Sequence[float]]],
                         info: Optional[dict] = None) -> List[list]:
    """The box filter of stage 2c applied to every image.

    Args:
        proposals (Sequence): Per image its proposals ``(x, y, w, h)``.
        info (dict, optional): Filter settings as in the ``info`` part.
            Defaults to :data:`DEFAULT_INFO`.

    Returns:
        list[list]: Per image its kept boxes.
    """
    info = dict(DEFAULT_INFO, **(info or {}))
    return [
        filter_proposals(
            boxes,
            min_size=info['bbox_min_size'],
            max_aspect_ratio=info['bbox_max_aspect_ratio'],
            max_iou=info['bbox_max_iou'],
            max_num=info['intra_bbox_num']) for boxes in proposals
    ]


def image_pairs(row: int, neighbours: Sequence[int], kept: Sequence[list],
                embedding: Callable[[int], np.ndarray],
                pair_ratio: float) -> List[List[List[float]]]:
    """RoI pairs between image ``row`` and each of its neighbours.

    Args:
        row (int): The image.
        neighbours (Sequence[int]): Its neighbour rows.
        kept (Sequence[list]): Per image its filtered boxes.
        embedding (Callable): ``row -> (len(kept[row]), D)`` L2-normalised
            RoI embeddings.
        pair_ratio (float): Share of the image's boxes kept as pairs.

    Returns:
        list: Per neighbour a list of ``[x, y, w, h, x', y', w', h']``.
    """
    mine = np.asarray(embedding(row), np.float64)
    per_nb = []
    for j in neighbours:
        j = int(j)
        sim = mine @ np.asarray(embedding(j), np.float64).T
        pairs = select_top_pairs(sim, pair_ratio)
        per_nb.append([[float(v) for v in kept[row][a]] +
                       [float(v) for v in kept[j][b]] for a, b in pairs])
    return per_nb


def assemble_correspondence(images: dict, kept: Sequence[list],
                            knn: Sequence[Sequence[int]],
                            pairs: Sequence[list],
                            info: Optional[dict] = None) -> dict:
    """The correspondence file's content from its parts.

    Args:
        images (dict): The ``images`` part.
        kept (Sequence[list]): Per image its filtered boxes.
        knn (Sequence): Per image its neighbour rows.
        pairs (Sequence[list]): Per image the output of
            :func:`image_pairs`.
        info (dict, optional): Defaults to :data:`DEFAULT_INFO`.

    Returns:
        dict: The file content (``info``, ``images``,
        ``pseudo_annotations``).
    """
    return dict(
        info=dict(DEFAULT_INFO, **(info or {})),
        images=images,
        pseudo_annotations=dict(
            image_id=list(images['id']),
            bbox=[[[float(v) for v in b] for b in bs] for bs in kept],
            knn_image_id=[[int(j) for j in row] for row in knn],
            knn_bbox_pair=list(pairs)))


def build_correspondence(
        images: dict,
        proposals: Sequence[Sequence[Sequence[float]]],
        knn: Sequence[Sequence[int]],
        embed_boxes: Callable[[int, List[List[float]]], np.ndarray],
        info: Optional[dict] = None,
        cache: Optional[MutableMapping[int, np.ndarray]] = None,
        progress: Optional[Callable[[int], None]] = None) -> dict:
    """Stage 2c: filter boxes and select RoI pairs for every image.

    Each image's filtered boxes are embedded once (``embed_boxes``) and
    cached in ``cache``; the authors' code embeds them again every time the
    image appears as a neighbour, with the same result. At COCO scale
    (118k images x 100 boxes x 2048 dims) pass a disk-backed mapping.

    Args:
        images (dict): The ``images`` part.
        proposals (Sequence): Per image its proposals ``(x, y, w, h)``.
        knn (Sequence): Per image its neighbour rows.
        embed_boxes (Callable): ``(row, boxes) -> (len(boxes), D)``
            L2-normalised embeddings of the image's box crops.
        info (dict, optional): Filter and pair settings, as the ``info``
            part. Defaults to :data:`DEFAULT_INFO`.
        cache (MutableMapping, optional): Row -> (num_boxes, D) float32
            embeddings. Defaults to a new in-memory dict.
        progress (Callable, optional): Called with each finished row.

    Returns:
        dict: The correspondence file's content.
    """
    info = dict(DEFAULT_INFO, **(info or {}))
    kept = filter_all_proposals(proposals, info)
    cache = {} if cache is None else cache

    def emb(row):
        if row not in cache:
            cache[row] = np.asarray(embed_boxes(row, kept[row]), np.float32)
        return cache[row]

    all_pairs = []
    for i in range(len(images['file_name'])):
        all_pairs.append(
            image_pairs(i, knn[i], kept, emb, info['knn_bbox_pair_ratio']))
        if progress is not None:
            progress(i)
    return assemble_correspondence(images, kept, knn, all_pairs, info)
