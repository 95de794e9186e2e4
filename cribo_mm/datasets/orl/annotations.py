# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL's stage-2 files: layout, validation and construction.

Three JSON files share one ``images`` part, whose list order is the index
space of every ``knn_image_id``::

    images:             {file_name: [str, ...], id: [int, ...]}

* kNN file (stage 2a)::

    pseudo_annotations: {image_id: [...], knn_image_id: [[10 rows], ...]}

* proposals file (stage 2b; selective search in the authors' code)::

    pseudo_annotations: {image_id: [...], bbox: [[[x, y, w, h], ...], ...]}

* correspondence file (stage 2c), read by :class:`ORLPairDataset`::

    info:               {bbox_min_size, bbox_max_aspect_ratio, bbox_max_iou,
                         intra_bbox_num, knn_image_num, knn_bbox_pair_ratio}
    pseudo_annotations: {image_id: [...],
                         bbox: per image its filtered boxes [[x, y, w, h]],
                         knn_image_id: per image its neighbour rows,
                         knn_bbox_pair: per image, per neighbour, a list of
                                        [x, y, w, h, x', y', w', h']}

All per-image lists are aligned with ``images``. Boxes are ``(x, y, w, h)``
in pixels of the original image.
"""
import json
import os
import os.path as osp
from typing import (Callable, List, MutableMapping, Optional, Sequence)

import numpy as np

from .boxes import filter_proposals, select_top_pairs

__all__ = [
    'ORLAnnotationError', 'DEFAULT_INFO', 'assemble_correspondence',
    'build_correspondence', 'filter_all_proposals', 'image_pairs',
    'knn_from_embeddings', 'load_orl_json', 'make_images_part',
    'read_json', 'resolve_image_paths', 'validate_images_part',
    'validate_orl_json'
]

DEFAULT_INFO = dict(
    bbox_min_size=96,
    bbox_max_aspect_ratio=3,
    bbox_max_iou=0.5,
    intra_bbox_num=100,
    knn_image_num=10,
    knn_bbox_pair_ratio=0.1)

_KINDS = {
    'knn': ('knn_image_id', ),
    'proposals': ('bbox', ),
    'correspondence': ('bbox', 'knn_image_id', 'knn_bbox_pair'),
}


class ORLAnnotationError(ValueError):
    """A stage-2 JSON file does not have the documented layout.

    Args:
        filename (str): The file.
        key (str): Path of the offending key, e.g.
            ``pseudo_annotations.bbox[3]``.
        reason (str): What is wrong.
    """

    def __init__(self, filename: str, key: str, reason: str) -> None:
        self.filename, self.key, self.reason = filename, key, reason
        super().__init__(f'{filename!r}: key {key!r}: {reason}')

    def __reduce__(self):
        return (self.__class__, (self.filename, self.key, self.reason))


def _is_box(b, n: int = 4) -> bool:
    return (isinstance(b, (list, tuple)) and len(b) == n and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in b))


def validate_images_part(data: dict, filename: str = '<memory>') -> dict:
    """Check the ``images`` part shared by every stage-2 file.

    Args:
        data (dict): A parsed stage-2 file (any kind).
        filename (str): Named in errors. Defaults to '<memory>'.

    Returns:
        dict: The ``images`` part.

    Raises:
        ORLAnnotationError: On the first problem, naming file and key.
    """

    def fail(key, reason):
        raise ORLAnnotationError(filename, key, reason)

    if not isinstance(data, dict):
        fail('<root>', f'expected a JSON object, got {type(data).__name__}')
    images = data.get('images')
    if not isinstance(images, dict):
        fail('images', 'missing or not an object {file_name, id}')
    for k in ('file_name', 'id'):
        if not isinstance(images.get(k), list):
            fail(f'images.{k}', 'missing or not a list')
    names, ids = images['file_name'], images['id']
    n = len(names)
    if n == 0:
        fail('images.file_name', 'empty image list')
    if len(ids) != n:
        fail('images.id', f'{len(ids)} ids for {n} file names')
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            fail(f'images.file_name[{i}]', 'not a non-empty string')
    return images


def validate_orl_json(data: dict,
                      kind: str,
                      filename: str = '<memory>') -> dict:
    """Check a stage-2 JSON object against the documented layout.

    Args:
        data (dict): The parsed file.
        kind (str): 'knn', 'proposals' or 'correspondence'.
        filename (str): Named in errors. Defaults to '<memory>'.

    Returns:
        dict: ``data`` itself.

    Raises:
        ORLAnnotationError: On the first problem, naming file and key.
    """
    if kind not in _KINDS:
        raise ValueError(f'kind must be one of {sorted(_KINDS)}, got {kind!r}')

    def fail(key, reason):
        raise ORLAnnotationError(filename, key, reason)

    n = len(validate_images_part(data, filename)['file_name'])
    ann = data.get('pseudo_annotations')
    if not isinstance(ann, dict):
        fail('pseudo_annotations', 'missing or not an object')
    for k in ('image_id', ) + _KINDS[kind]:
        if not isinstance(ann.get(k), list):
            fail(f'pseudo_annotations.{k}', 'missing or not a list')
        if len(ann[k]) != n:
            fail(f'pseudo_annotations.{k}',
                 f'has {len(ann[k])} entries for {n} images')
    if kind == 'correspondence':
        info = data.get('info')
        if not isinstance(info, dict):
            fail('info', 'missing or not an object')
        for k in DEFAULT_INFO:
            if k not in info:
                fail(f'info.{k}', 'missing')
    if 'bbox' in _KINDS[kind]:
        for i, boxes in enumerate(ann['bbox']):
            key = f'pseudo_annotations.bbox[{i}]'
            if not isinstance(boxes, list) or not boxes:
                fail(key, 'not a non-empty list of boxes')
            for j, b in enumerate(boxes):
                if not _is_box(b):
                    fail(f'{key}[{j}]', f'not [x, y, w, h]: {b!r}')
                if b[2] <= 0 or b[3] <= 0:
                    fail(f'{key}[{j}]', f'non-positive width/height: {b!r}')
    if 'knn_image_id' in _KINDS[kind]:
        for i, rows in enumerate(ann['knn_image_id']):
            key = f'pseudo_annotations.knn_image_id[{i}]'
            if not isinstance(rows, list) or not rows:
                fail(key, 'not a non-empty list of image rows')
            for r in rows:
                if (not isinstance(r, int) or isinstance(r, bool)
                        or not 0 <= r < n):
                    fail(key, f'row {r!r} is not an index in [0, {n})')
    if kind == 'correspondence':
        for i, per_nb in enumerate(ann['knn_bbox_pair']):
            key = f'pseudo_annotations.knn_bbox_pair[{i}]'
            nk = len(ann['knn_image_id'][i])
            if not isinstance(per_nb, list) or len(per_nb) != nk:
                fail(key, f'expected {nk} lists (one per neighbour)')
            for j, pairs in enumerate(per_nb):
                if not isinstance(pairs, list) or not pairs:
                    fail(f'{key}[{j}]', 'not a non-empty list of pairs')
                for p in pairs:
                    if not _is_box(p, 8) or min(p[2], p[3], p[6], p[7]) <= 0:
                        fail(f'{key}[{j}]',
                             f'not [x, y, w, h, x2, y2, w2, h2]: {p!r}')
    return data


def load_orl_json(filename: str, kind: str) -> dict:
    """Read and validate a stage-2 JSON file.

    Args:
        filename (str): Path of the file.
        kind (str): 'knn', 'proposals' or 'correspondence'.

    Returns:
        dict: The validated content.

    Raises:
        FileNotFoundError: No such file.
        ORLAnnotationError: Not JSON, or not the documented layout.
    """
    return validate_orl_json(read_json(filename), kind, filename)


def read_json(filename: str):
    """Parse a JSON file, naming it and the position of a syntax error.

    Args:
        filename (str): Path of the file.

    Returns:
        The parsed content.

    Raises:
        FileNotFoundError: No such file.
        ORLAnnotationError: Not UTF-8 JSON; the message gives the line,
            column and character offset of the error.
    """
    try:
        with open(filename, encoding='utf-8') as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ORLAnnotationError(
            filename, '<root>', f'not valid JSON: {e.msg} at line '
            f'{e.lineno}, column {e.colno} (character {e.pos})') from e
    except UnicodeDecodeError as e:
        raise ORLAnnotationError(
            filename, '<root>', f'not a UTF-8 text file (byte {e.start}: '
            f'{e.reason})') from e


def resolve_image_paths(names: Sequence[str], img_root: str,
                        filename: str = '<memory>') -> List[str]:
    """Join the ``images.file_name`` entries of a stage-2 file to the image
    folder, refusing any that leads outside it.

    A name is refused when the path it gives, with ``..`` components and
    symbolic links resolved, is not inside the (resolved) image folder:
    ``../`` escapes, absolute paths elsewhere and links pointing out of the
    folder. With an empty ``img_root`` the names are used as listed (the
    files written with ``--img-root ''`` hold full paths).

    Args:
        names (Sequence[str]): File names, relative to ``img_root``.
        img_root (str): The image folder (``--img-root``).
        filename (str): The stage-2 file, named in errors.

    Returns:
        list[str]: ``img_root``-joined paths, in order.

    Raises:
        ORLAnnotationError: A name outside ``img_root``, naming the file,
            its index and where it leads.
    """
    if not img_root:
        return list(names)
    root = osp.realpath(img_root)
    paths = []
    for i, name in enumerate(names):
        path = osp.join(img_root, name)
        real = osp.realpath(path)
        if real != root and not real.startswith(root.rstrip(os.sep) +
                                                os.sep):
            raise ORLAnnotationError(
                filename, f'images.file_name[{i}]',
                f'{name!r} leads outside the image folder {img_root!r} '
                f'(to {real!r}); names must be relative paths inside it')
        paths.append(path)
    return paths


def make_images_part(file_names: Sequence[str],
                     ids: Optional[Sequence[int]] = None) -> dict:
    """The shared ``images`` part.

    Args:
        file_names (Sequence[str]): Image paths, relative to the image
            folder, in index order.
        ids (Sequence[int], optional): Image ids. Defaults to the row index.

    Returns:
        dict: ``{'file_name': [...], 'id': [...]}``.
    """
    ids = list(range(len(file_names))) if ids is None else ids
    return dict(file_name=list(file_names), id=[int(i) for i in ids])


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
