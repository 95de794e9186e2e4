# Copyright (c) cribo-mm contributors. All rights reserved.
from .clustering import (TeacherObjects, cluster_two_views, pool_objects,
                         pos_alpha_schedule, sinkhorn_knopp, teacher_objects)
from .memory_bank import CrIBoMemoryBank, RetrievalResult

__all__ = [
    'CrIBoMemoryBank', 'RetrievalResult', 'TeacherObjects',
    'cluster_two_views', 'pool_objects', 'pos_alpha_schedule',
    'sinkhorn_knopp', 'teacher_objects'
]
