# Copyright (c) cribo-mm contributors. All rights reserved.
"""Data sets and transforms of cribo-mm.

Pretraining data sets and transforms register in mmpretrain's registries;
the segmentation data sets in :mod:`cribo_mm.datasets.seg` register in
MMSegmentation's.
"""
from .coco import CrIBoCocoDataset
from .demo_dataset import CrIBoDemoScenes
from .demo_scenes import (DEMO_CLASSES, DEMO_PALETTE, demo_scenes_root,
                          ensure_demo_scenes, generate_demo_scenes)
from .folder import CrIBoImageFolder, scan_images
from .orl import (ORLAnnotationError, ORLLoadImagePair, ORLMultiBranch,
                  ORLPairDataset, ORLRoIJitter, ORLSelectRoIPair)
from .seg import CrIBoCamVidDataset, DemoScenesSegDataset
from .transforms import (CrIBoLoadImageFromFile, CrIBoMultiView,
                         CrIBoRandomFlip, CrIBoRandomResizedCrop,
                         UnreadableImageError, patch_centres)

__all__ = [
    'CrIBoCamVidDataset', 'CrIBoCocoDataset', 'CrIBoDemoScenes',
    'CrIBoImageFolder', 'CrIBoLoadImageFromFile', 'CrIBoMultiView',
    'CrIBoRandomFlip', 'CrIBoRandomResizedCrop', 'DEMO_CLASSES',
    'DEMO_PALETTE', 'DemoScenesSegDataset', 'ORLAnnotationError',
    'ORLLoadImagePair', 'ORLMultiBranch', 'ORLPairDataset', 'ORLRoIJitter',
    'ORLSelectRoIPair', 'UnreadableImageError',
    'demo_scenes_root', 'ensure_demo_scenes', 'generate_demo_scenes',
    'patch_centres', 'scan_images'
]
