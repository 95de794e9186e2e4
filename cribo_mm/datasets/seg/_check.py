# Copyright (c) cribo-mm contributors. All rights reserved.
"""Start-up checks shared by the segmentation data sets."""
import os.path as osp
from typing import List

__all__ = ['check_seg_data_list', 'check_seg_folders']


def check_seg_folders(name: str, data_root: str, data_prefix: dict) -> None:
    """Fail early, and clearly, when the image or label folder is missing.

    Args:
        name (str): Data set class name for the message.
        data_root (str): The data root as given.
        data_prefix (dict): ``img_path`` / ``seg_map_path`` relative to it.

    Raises:
        FileNotFoundError: If a folder does not exist.
    """
    if data_root is not None and not osp.isdir(data_root):
        raise FileNotFoundError(f'{name}: data_root {data_root!r} does not '
                                'exist.')
    for key in ('img_path', 'seg_map_path'):
        sub = data_prefix.get(key)
        if sub is None:
            continue
        path = sub if osp.isabs(sub) or data_root is None else osp.join(
            data_root, sub)
        if not osp.isdir(path):
            raise FileNotFoundError(f'{name}: {key} folder {path!r} does not '
                                    f'exist (data_root={data_root!r}).')


def check_seg_data_list(name: str, data_list: List[dict],
                        img_dir: str) -> List[dict]:
    """Raise when no image was found or a label map is missing.

    Args:
        name (str): Data set class name for the message.
        data_list (list[dict]): Output of ``BaseSegDataset.load_data_list``.
        img_dir (str): Image folder, for the message.

    Returns:
        list[dict]: ``data_list`` unchanged.
    """
    if not data_list:
        raise ValueError(f'{name}: no image found in {img_dir!r}.')
    missing = [
        d['seg_map_path'] for d in data_list
        if 'seg_map_path' in d and not osp.isfile(d['seg_map_path'])
    ]
    if missing:
        raise FileNotFoundError(
            f'{name}: {len(missing)} label map(s) missing, e.g. '
            f'{missing[0]!r}.')
    return data_list
