# Copyright (c) cribo-mm contributors. All rights reserved.
from .object_pooling import CrIBoObjectPooling, ObjectAssignment
from .projection_head import CrIBoProjectionHead

__all__ = ['CrIBoObjectPooling', 'CrIBoProjectionHead', 'ObjectAssignment']
