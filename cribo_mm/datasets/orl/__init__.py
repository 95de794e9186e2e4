# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL (object-level representation learning) data: the stage-2 file
layout, the stage-3 RoI-pair data set and its transforms.

The stage-2 mining that writes the files is :mod:`cribo_mm.orl_mining`.
"""
from .annotations import (DEFAULT_INFO, ORLAnnotationError, load_orl_json,
                          make_images_part, read_json, resolve_image_paths,
                          validate_images_part, validate_orl_json)
from .boxes import box_iou, crop_resize, jitter_box
from .dataset import ORLPairDataset
from .transforms import (ORLLoadImagePair, ORLMultiBranch, ORLRoIJitter,
                         ORLSelectRoIPair)

__all__ = [
    'DEFAULT_INFO', 'ORLAnnotationError', 'ORLLoadImagePair', 'ORLMultiBranch',
    'ORLPairDataset', 'ORLRoIJitter', 'ORLSelectRoIPair', 'box_iou',
    'crop_resize', 'jitter_box', 'load_orl_json', 'make_images_part',
    'read_json', 'resolve_image_paths', 'validate_images_part',
    'validate_orl_json'
]
