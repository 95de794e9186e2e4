# Copyright (c) cribo-mm contributors. All rights reserved.
from .cribo import CrIBo

__all__ = ['CrIBo']
