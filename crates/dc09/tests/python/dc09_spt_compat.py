"""dc09-spt 0.0.4 was written for pycrypto, which took str keys and IVs; pycryptodome wants
bytes. `install()` puts a shim in front of dc09-spt's AES that only converts (latin-1): its own
pad, plaintext layout and AES-CBC call are unchanged. Returns the patched dc09_msg module."""
import sys

import dc09_spt.msg.dc09_msg  # noqa: F401


def _b(x):
    return x.encode("latin-1") if isinstance(x, str) else x


def install():
    mod = sys.modules["dc09_spt.msg.dc09_msg"]
    if getattr(mod.AES, "_vaka_shim", False):
        return mod
    aes = mod.AES

    class _Cipher:
        def __init__(self, key, mode, iv):
            self.c = aes.new(_b(key), mode, _b(iv))

        def encrypt(self, data):
            return self.c.encrypt(_b(data))

        def decrypt(self, data):
            return self.c.decrypt(_b(data))

    class _AesShim:
        MODE_CBC = aes.MODE_CBC
        new = _Cipher
        _vaka_shim = True

    mod.AES = _AesShim
    return mod
