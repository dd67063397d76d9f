"""A centre written against proto/centre.proto with grpcio, stubs generated at run time.

Usage: centre_client.py PROTO_DIR OUT_DIR ADDR TOKEN OPERATOR

Connects, prints one JSON line per event on stdout ({"event": "welcome"|"offer"|"accepted"|
"audit"}), confirms receipt of the first offer, accepts it as OPERATOR, reads its audit trail, and
exits 0. Any failure exits non-zero with the reason on stderr.
"""
import json
import os
import queue
import sys

proto_dir, out_dir, addr, token, operator = sys.argv[1:6]

from grpc_tools import protoc  # noqa: E402

rc = protoc.main([
    "grpc_tools.protoc",
    f"-I{proto_dir}",
    f"--python_out={out_dir}",
    f"--grpc_python_out={out_dir}",
    os.path.join(proto_dir, "centre.proto"),
])
if rc != 0:
    sys.exit(f"protoc failed with {rc}")
sys.path.insert(0, out_dir)

import grpc  # noqa: E402
import centre_pb2 as pb  # noqa: E402
import centre_pb2_grpc  # noqa: E402


def emit(**kw):
    print(json.dumps(kw), flush=True)


metadata = [("authorization", f"Bearer {token}")]
channel = grpc.insecure_channel(addr)
stub = centre_pb2_grpc.AlarmCentreStub(channel)

outbox = queue.Queue()
outbox.put(pb.CentreMessage(hello=pb.Hello(client="python-grpcio")))


def requests():
    while True:
        m = outbox.get()
        if m is None:
            return
        yield m


alarm_id = None
stream = stub.Session(requests(), metadata=metadata, timeout=30)
for m in stream:
    kind = m.WhichOneof("msg")
    if kind == "welcome":
        emit(event="welcome", centre=m.welcome.centre_id, tenants=list(m.welcome.tenants))
    elif kind == "offer" and alarm_id is None:
        a = m.offer.alarm
        alarm_id = a.alarm_id
        emit(event="offer", alarm_id=a.alarm_id, tenant=a.tenant, device=a.device,
             cursor=m.offer.cursor, state=a.state, callback=list(a.callback),
             lat=a.position.lat if a.HasField("position") else None)
        outbox.put(pb.CentreMessage(receipt=pb.Receipt(request_id=1, alarm_id=alarm_id)))
        outbox.put(pb.CentreMessage(ack=pb.Ack(cursor=m.offer.cursor)))
        outbox.put(pb.CentreMessage(accept=pb.Accept(
            request_id=2, alarm_id=alarm_id, operator_id=operator)))
    elif kind == "result":
        r = m.result
        if r.code != 0:
            sys.exit(f"request {r.request_id} refused: {r.code} {r.message}")
        if r.request_id == 2:
            emit(event="accepted", alarm_id=r.alarm_id)
            break
outbox.put(None)
stream.cancel()

audit = stub.GetAudit(pb.GetAuditRequest(alarm_id=alarm_id), metadata=metadata, timeout=10)
emit(event="audit", actions=[r.action for r in audit.records], state=audit.alarm.state,
     operator=audit.alarm.operator_id)
