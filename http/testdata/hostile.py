"""Hostile kernels for the gateway's tests. Each binds the five channels of
its connection file like any kernel, then misbehaves:

  forge  publishes iopub status messages signed with a key that is not the
         connection file's, forever;
  close  answers kernel_info and heartbeats for two seconds, then closes
         every socket and lives on, deaf and mute.

Usage: hostile.py forge|close <connection file>"""
import hashlib, hmac, json, sys, time, uuid

import zmq

mode, info = sys.argv[1], json.load(open(sys.argv[2]))
ctx = zmq.Context()
sockets = {}  # kept: a socket nobody references is closed by the garbage collector
for name, kind in (("shell", zmq.ROUTER), ("control", zmq.ROUTER), ("stdin", zmq.ROUTER), ("hb", zmq.REP), ("iopub", zmq.PUB)):
    sockets[name] = ctx.socket(kind)
    sockets[name].bind("tcp://%s:%d" % (info["ip"], info[name + "_port"]))


def signed(key, msg_type, parent, content):
    header = json.dumps({"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": "hostile", "username": "hostile",
                         "date": "2026-01-01T00:00:00.000000Z", "version": "5.3"}).encode()
    parts = [header, parent, b"{}", json.dumps(content).encode()]
    sig = hmac.new(key, digestmod=hashlib.sha256)
    for p in parts:
        sig.update(p)
    return [b"<IDS|MSG>", sig.hexdigest().encode()] + parts


if mode == "forge":
    while True:
        sockets["iopub"].send_multipart([b"status"] + signed(b"not-the-key", "status", b"{}", {"execution_state": "idle"}))
        time.sleep(0.05)

key = info["key"].encode()
poller = zmq.Poller()
poller.register(sockets["shell"], zmq.POLLIN)
poller.register(sockets["hb"], zmq.POLLIN)
end = None
while end is None or time.time() < end:
    for sock, _ in poller.poll(100):
        frames = sock.recv_multipart()
        if sock is sockets["hb"]:
            sock.send_multipart(frames)
            continue
        ids, parent = frames[:frames.index(b"<IDS|MSG>")], frames[frames.index(b"<IDS|MSG>") + 2]
        reply = {"status": "ok", "protocol_version": "5.3", "implementation": "hostile", "implementation_version": "1",
                 "language_info": {"name": "python"}, "banner": "", "help_links": []}
        sock.send_multipart(ids + signed(key, "kernel_info_reply", parent, reply))
        sockets["iopub"].send_multipart([b"status"] + signed(key, "status", parent, {"execution_state": "idle"}))
        if end is None:
            end = time.time() + 2
for s in sockets.values():
    s.close(linger=0)
while True:
    time.sleep(60)
