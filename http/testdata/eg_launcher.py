"""A kernel launcher written from Enterprise Gateway's protocol description,
independently of kernelgate's Go code: the compatibility proof that a
gateway decodes what EG's launchers send.

It picks the kernel's ports, writes a connection file, encrypts the
connection info as EG's version-1 payload (a random AES-128 key, AES-ECB
with PKCS#7 padding, the key wrapped with RSA PKCS#1 v1.5 under the
gateway's public key, the whole a base64 JSON envelope, using Debian's
python3-pycryptodome), sends it to the response address, serves the comm
port ({"signum": N} and {"shutdown": 1}) and runs ipykernel in-process,
as EG's launch_ipykernel.py does.
"""

import argparse
import base64
import json
import os
import socket
import tempfile
import threading
import uuid

from Cryptodome.Cipher import AES, PKCS1_v1_5
from Cryptodome.PublicKey import RSA
from Cryptodome.Random import get_random_bytes
from Cryptodome.Util.Padding import pad


def bind_ip():
    # Like kernelgate's launcher: the address the SSH connection came to.
    parts = os.environ.get("SSH_CONNECTION", "").split()
    return parts[2] if len(parts) == 4 else "0.0.0.0"


def free_port(ip):
    s = socket.socket()
    s.bind((ip, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def encrypt(info, public_key):
    aes_key = get_random_bytes(16)
    conn_info = AES.new(aes_key, AES.MODE_ECB).encrypt(pad(json.dumps(info).encode(), 16))
    rsa_key = RSA.importKey(base64.b64decode(public_key))
    wrapped = PKCS1_v1_5.new(rsa_key).encrypt(aes_key)
    envelope = {"version": 1, "key": base64.b64encode(wrapped).decode(),
                "conn_info": base64.b64encode(conn_info).decode()}
    return base64.b64encode(json.dumps(envelope).encode())


def serve_comm(listener):
    while True:
        conn, _ = listener.accept()
        data = b""
        while True:
            chunk = conn.recv(1024)
            if not chunk:
                break
            data += chunk
        conn.close()
        request = json.loads(data)
        if "signum" in request and request["signum"] != 0:
            os.kill(os.getpid(), request["signum"])
        if request.get("shutdown"):
            listener.close()
            return


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kernel-id", required=True)
    p.add_argument("--response-address", required=True)
    p.add_argument("--public-key", required=True)
    p.add_argument("--port-range", default="0..0")
    args = p.parse_args()

    ip = bind_ip()
    ports = [free_port(ip) for _ in range(5)]
    comm = socket.socket()
    comm.bind((ip, 0))
    comm.listen(1)
    info = dict(zip(["shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"], ports))
    info.update(ip=ip, key=str(uuid.uuid4()), transport="tcp", signature_scheme="hmac-sha256", kernel_name="")
    fd, conn_file = tempfile.mkstemp(prefix="kernel-%s_" % args.kernel_id, suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)

    info.update(pid=os.getpid(), pgid=os.getpgid(0), comm_port=comm.getsockname()[1], kernel_id=args.kernel_id)
    host, port = args.response_address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as s:
        s.sendall(encrypt(info, args.public_key))

    threading.Thread(target=serve_comm, args=(comm,), daemon=True).start()
    try:
        from ipykernel.kernelapp import IPKernelApp
        app = IPKernelApp.instance()
        app.initialize(["-f", conn_file])
        app.start()
    finally:
        os.remove(conn_file)


if __name__ == "__main__":
    main()
