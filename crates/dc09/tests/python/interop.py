"""Second opinions on the frames vaka-dc09 writes, from implementations written by others.

Reads JSON lines on stdin (written by tests/interop.rs), one check per line:
- {"check": "message", "frame_hex", "account", "key"|null, "token", "seq", "code"+"area" or
   "qualifier"+"event"+"group",
   "ack_hex"}: pysiaalarm (a DC-09 receiver) parses the message our encoder wrote (CRC,
   decryption, content, timestamp window) and must want to ACK it; for a plain message its
   own ACK must equal ours byte for byte.
- {"check": "answer", "frame_hex", "account", "key"|null, "seq", "expect"}: dc09-spt (a DC-09
   dialler) checks our ACK/NAK/DUH as it does a receiver's answer (length, CRC, sequence,
   decryption of *ACK, timestamp -> clock offset) and must read `expect`.
Prints "ok N" and exits 0, or prints what failed and exits 1.
"""
import json
import sys

import dc09_spt_compat

import dc09_spt.msg.dc09_msg  # noqa: F401
from pysiaalarm import SIAAccount
from pysiaalarm.event import SIAEvent
from pysiaalarm.utils.enums import ResponseType

mod = dc09_spt_compat.install()


def check_message(c):
    line = bytes.fromhex(c["frame_hex"]).decode("latin-1")
    account = SIAAccount(c["account"], c["key"])
    # As pysiaalarm's server does: strip the LF and CR, then parse.
    ev = SIAEvent.from_line(line.strip(), {c["account"]: account})
    assert ev.valid_message, f"CRC: sent {ev.msg_crc}, computed {ev.calc_crc}"
    assert ev.message_type.value == c["token"], ev.message_type
    assert ev.sequence == c["seq"], ev.sequence
    assert ev.encrypted == (c["key"] is not None)
    assert ev.valid_timestamp, f"timestamp {ev.timestamp}"
    if "code" in c:
        assert ev.code == c["code"], (ev.code, ev.content)
        assert ev.ri == c["area"], (ev.ri, ev.content)
    if "qualifier" in c:
        assert (ev.event_qualifier, ev.event_type, ev.partition) == (
            c["qualifier"], c["event"], c["group"]), ev.content
    assert ev.response == ResponseType.ACK, ev.response
    if c["key"] is None:
        theirs = ev.create_response()
        ours = bytes.fromhex(c["ack_hex"])
        assert theirs == ours, f"ACK: pysiaalarm {theirs!r}, ours {ours!r}"


def check_answer(c):
    frame = bytes.fromhex(c["frame_hex"]).decode("latin-1")
    key = c["key"].encode("latin-1") if c["key"] is not None else None
    dialler = mod.dc09_msg(c["account"], key)
    # dc09-spt numbers messages in hex (`{:04X}`) and reads the answer's number back so.
    got, offset = dialler.dc09answer(int(c["seq"], 16), frame)
    assert got == c["expect"], f"{got} != {c['expect']}"
    if c["timestamped"]:
        assert offset is not None and abs(offset) < 60, f"clock offset {offset}"
    else:
        assert offset is None, offset


def main():
    n = 0
    for raw in sys.stdin:
        if not raw.strip():
            continue
        c = json.loads(raw)
        try:
            {"message": check_message, "answer": check_answer}[c["check"]](c)
        except Exception as e:  # noqa: BLE001 - report every failure with its case
            print(f"FAILED {c}: {type(e).__name__}: {e}")
            sys.exit(1)
        n += 1
    print(f"ok {n}")


if __name__ == "__main__":
    main()
