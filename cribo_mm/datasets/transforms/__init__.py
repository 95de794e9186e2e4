# Copyright (c) cribo-mm contributors. All rights reserved.
"""Data transforms of the CrIBo two-view pipeline."""
from .geometry import crop_box_from_ijhw, patch_centres, sample_resized_crop
from .loading import (CrIBoLoadImageFromFile, UnreadableImageError,
                      decode_image)
from .photometric import CrIBoColorJitter, adjust_hue
from .spatial import CrIBoRandomFlip, CrIBoRandomResizedCrop, resize_crop
from .wrappers import CrIBoMultiView

__all__ = [
    'CrIBoColorJitter', 'adjust_hue', 'CrIBoLoadImageFromFile',
    'CrIBoMultiView', 'CrIBoRandomFlip', 'CrIBoRandomResizedCrop',
    'UnreadableImageError', 'crop_box_from_ijhw', 'decode_image',
    'patch_centres', 'resize_crop', 'sample_resized_crop'
]
