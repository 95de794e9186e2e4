# Copyright (c) cribo-mm contributors. All rights reserved.
from .cribo import CrIBo
from .orl import ORL

__all__ = ['CrIBo', 'ORL']
