"""A DC-09 panel made of dc09-spt's parts (message builders, TCP/UDP paths, answer check).

Reads JSON lines on stdin, one message each:
  {"transport": "tcp"|"udp", "port", "account", "key": hex|null, "type": "SIA-DCS"|"ADM-CID"|"NULL",
   "seq", "params": {...dc09-spt's dc03event/dc05event params...}, "repeat": n (default 1)}
sends it (repeat times, the same bytes) to 127.0.0.1:port and prints one JSON line per send:
  {"answer": "ACK"|"NAK"|"DUH"|null, "error": "..."}.
The answer is read by dc09-spt's `dc09answer`: length, CRC, sequence, decryption of *ACK.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "crates", "dc09", "tests", "python"))
import dc09_spt_compat  # noqa: E402

import dc09_spt.msg.dc09_msg  # noqa: F401
from dc09_spt.comm.transpathtcp import TransPathTCP
from dc09_spt.comm.transpathudp import TransPathUDP
from dc09_spt.msg.dc03_msg import dc03_msg
from dc09_spt.msg.dc05_msg import dc05_msg

mod = dc09_spt_compat.install()


def extra_blocks(params):
    """Extended data as dc09-spt's `dc09_extra` documents it (X longitude, Y latitude, M MAC,
    V verification URL): its 0.0.4 body builds the text and never returns it, so dc09-spt
    itself sends no extended data."""
    out = ""
    for key, letter in (("lon", "X"), ("lat", "Y"), ("mac", "M"), ("verification", "V")):
        if key in params:
            out += "[" + letter + params[key] + "]"
    return out


def send(c):
    key = bytes.fromhex(c["key"]) if c.get("key") else None
    dialler = mod.dc09_msg(c["account"], key, None, 0)
    kind = c["type"]
    if kind == "SIA-DCS":
        payload = dc03_msg.dc03event(c["account"], c.get("params", {}))
    elif kind == "ADM-CID":
        payload = dc05_msg.dc05event(c["account"], c.get("params", {}))
    else:
        payload = "]"
    payload += extra_blocks(c.get("params", {}))
    block = dialler.dc09block(c["seq"], kind, payload).encode("latin-1")
    if c["transport"] == "tcp":
        path = TransPathTCP("127.0.0.1", c["port"], timeout=10)
    else:
        path = TransPathUDP("127.0.0.1", c["port"], timeout=10)
    out = []
    for _ in range(c.get("repeat", 1)):
        conn = path.connect()
        if conn is None:
            out.append({"answer": None, "error": "cannot connect"})
            continue
        raw = path.sendAndReceive(block, 1024)
        path.disconnect()
        if raw is None:
            out.append({"answer": None, "error": "no answer"})
            continue
        try:
            answer, _offset = dialler.dc09answer(c["seq"], raw.decode("latin-1"))
            out.append({"answer": answer})
        except Exception as e:  # noqa: BLE001 - reported to the test
            out.append({"answer": None, "error": f"{e}: {raw!r}"})
    return out


for line in sys.stdin:
    if line.strip():
        for r in send(json.loads(line)):
            print(json.dumps(r), flush=True)
