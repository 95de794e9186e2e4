# Copyright (c) cribo-mm contributors. All rights reserved.
import os
import os.path as osp

import pytest

from tests.security.payloads import build_payloads, snapshot


class PayloadSet:
    """The hostile files of :mod:`tests.security.payloads` and the places
    they would change."""

    def __init__(self, folder):
        self.target = osp.join(folder, 'target')
        self.victim = osp.join(folder, 'victim.bin')
        os.makedirs(self.target)
        with open(self.victim, 'wb') as f:
            f.write(b'precious bytes' * 8)
        self.files = build_payloads(folder, self.target, self.victim)
        self.initial = snapshot(self.target, self.victim)

    def assert_untouched(self, name):
        assert snapshot(self.target, self.victim) == self.initial, (
            f'payload {name!r} ran: the target folder or the victim file '
            'changed')

    def restore(self):
        for entry in os.listdir(self.target):
            os.remove(osp.join(self.target, entry))
        with open(self.victim, 'wb') as f:
            f.write(self.initial[1])


@pytest.fixture(scope='session')
def payloads(tmp_path_factory):
    return PayloadSet(str(tmp_path_factory.mktemp('payloads')))
