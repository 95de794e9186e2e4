# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL's stage-2 files: layout, validation and reading.

The offline mining stage (:mod:`cribo_mm.orl_mining`) writes these files;
:class:`ORLPairDataset` reads the last one. Three JSON files share one
``images`` part, whose list order is the index space of every
``knn_image_id``::

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
from typing import List, Optional, Sequence

__all__ = [
    'ORLAnnotationError', 'DEFAULT_INFO', 'load_orl_json', 'make_images_part',
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
