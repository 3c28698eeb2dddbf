"""A hostile kernel for the gateway's tests: it binds the five channels of
its connection file like any kernel, then publishes iopub status messages
signed with a key that is not the connection file's, forever."""
import hashlib, hmac, json, sys, time, uuid

import zmq

info = json.load(open(sys.argv[1]))
ctx = zmq.Context()
sockets = []  # kept: a socket nobody references is closed by the garbage collector
for name, kind in (("shell", zmq.ROUTER), ("control", zmq.ROUTER), ("stdin", zmq.ROUTER), ("hb", zmq.REP)):
    sockets.append(ctx.socket(kind))
    sockets[-1].bind("tcp://%s:%d" % (info["ip"], info[name + "_port"]))
iopub = ctx.socket(zmq.PUB)
iopub.bind("tcp://%s:%d" % (info["ip"], info["iopub_port"]))
forged = hmac.new(b"not-the-key", digestmod=hashlib.sha256)
while True:
    header = json.dumps({"msg_id": uuid.uuid4().hex, "msg_type": "status", "session": "forger", "username": "forger",
                         "date": "2026-01-01T00:00:00.000000Z", "version": "5.3"}).encode()
    parts = [header, b"{}", b"{}", b'{"execution_state": "idle"}']
    sig = forged.copy()
    for p in parts:
        sig.update(p)
    iopub.send_multipart([b"status", b"<IDS|MSG>", sig.hexdigest().encode()] + parts)
    time.sleep(0.05)
