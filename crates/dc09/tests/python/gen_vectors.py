"""Produce the frames in tests/vectors.rs with dc09-spt 0.0.4 (PyPI `dc09-spt`, a DC-09
dialler by van Ovost Automatisering, Apache-2.0), so the decoder is checked against an
implementation written by others. Run once; its output was pasted into tests/vectors.rs.

    python3 -m venv venv && venv/bin/pip install pycryptodome && \
        venv/bin/pip install --no-deps dc09-spt && venv/bin/python gen_vectors.py

Clock and pad are fixed (2026-01-02 03:04:05 UTC, random.seed(24)) so the output repeats.
"""
import datetime
import random
import sys

import dc09_spt_compat

import dc09_spt.msg.dc09_msg  # noqa: F401  (the module; the package exports the class)
from dc09_spt.msg.dc03_msg import dc03_msg
from dc09_spt.msg.dc05_msg import dc05_msg

mod = sys.modules["dc09_spt.msg.dc09_msg"]
FIXED = datetime.datetime(2026, 1, 2, 3, 4, 5)


class FixedClock(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return FIXED


mod.datetime.datetime = FixedClock

mod = dc09_spt_compat.install()
random.seed(24)


def show(label, frame):
    print(label, repr(frame))


sia = dc03_msg.dc03event("1234", {"area": "1", "zone": "15", "code": "FA"})
cid = dc05_msg.dc05event("1234", {"q": "1", "code": "130", "area": "01", "zone": "15"})
plain = mod.dc09_msg("1234", None, receiver=0x12, line=3)
show("plain_sia", plain.dc09block(1, "SIA-DCS", sia))
show("plain_cid", plain.dc09block(10, "ADM-CID", cid))
show("plain_null", plain.dc09block(0))

k128 = b"0123456789ABCDEF"
k256 = bytes(range(32))
enc = mod.dc09_msg("1234", k128, receiver=0x12, line=3)
extra = "[X18.0686][Y59.3293]"  # dc09_extra's layout (0.0.4's dc09_extra returns None)
show("enc128_sia", enc.dc09block(2, "SIA-DCS", sia + extra))
show("enc128_null", enc.dc09block(3))
enc2 = mod.dc09_msg("5678", k256, line=7)
cid2 = dc05_msg.dc05event("5678", {"q": "3", "code": "602", "area": "00", "zone": "000"})
show("enc256_cid", enc2.dc09block(4, "ADM-CID", cid2))
