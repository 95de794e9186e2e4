# Copyright (c) cribo-mm contributors. All rights reserved.
"""Segmentation data sets registered in MMSegmentation's registry."""
from .camvid import CrIBoCamVidDataset
from .demo_scenes_seg import DemoScenesSegDataset

__all__ = ['CrIBoCamVidDataset', 'DemoScenesSegDataset']
