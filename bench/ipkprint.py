#!/usr/bin/python3
"""ipykernel printing N lines, read directly (jupyter_client) or behind kernelgate.

    bench/ipkprint.py direct [N]
    bench/ipkprint.py kg URL [N]      # kernelgate serve --list-kernels, no token

Both run `for i in range(N): print(i, flush=True)` in the kernelspec named by
$IPK_KERNEL (default python3; JUPYTER_PATH must find it) and print one line:
the kernel's own loop time (measured in the cell), the time from
execute_input to status idle, lines received and lost, and the CPU the
kernel process used during the cell (sys: its system part), split by
thread (loop: the thread that ran the cell; the other busy python3 thread
is ipykernel's IOPub thread, which serializes and sends; ZMQbg/IO is
libzmq's), and how often its threads were preempted, read from /proc.
$IPK_ATTACH, a shell command with {pid} for the kernel's, runs during the
cell and is stopped with SIGINT: 'perf stat --per-thread -p {pid}',
'strace -c -f -p {pid}', 'taskset -a -p 1 {pid}'.
It needs Debian's python3 (jupyter_client, websocket-client).
"""
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import time
import uuid

N = 100000
KERNEL = os.environ.get("IPK_KERNEL", "python3")
CODE = (
    "import sys, threading, time\nt = time.perf_counter()\n"
    "for i in range({n}):\n    print(i, flush=True)\n"
    "print('ELAPSED', time.perf_counter() - t, threading.get_native_id(), file=sys.stderr, flush=True)"
)
TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    """CPU seconds of pid, by thread name (comm), and its system time."""
    out = {"sys": 0}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        comm = "main" if tid == str(pid) else s[s.index("(") + 1:s.rindex(")")] + "/" + tid
        fields = s[s.rindex(")") + 2:].split()
        out[comm] = out.get(comm, 0) + (int(fields[11]) + int(fields[12])) / TICK
        out["sys"] += int(fields[12]) / TICK
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            st = dict(line.split(":", 1) for line in f)
        out["preempted"] = out.get("preempted", 0) + int(st["nonvoluntary_ctxt_switches"])
    return out


class Counter:
    """Follows one execution's iopub messages."""

    def __init__(self, msg_id):
        self.msg_id, self.text = msg_id, []
        self.t_input = self.t_idle = None
        self.elapsed, self.msgs, self.tid = None, 0, None

    def add(self, m):
        if m["parent_header"].get("msg_id") != self.msg_id:
            return False
        t, c = m["header"]["msg_type"], m["content"]
        if t == "execute_input":
            self.t_input = time.perf_counter()
        elif t == "stream" and c["name"] == "stdout":
            self.msgs += 1
            self.text.append(c["text"])
        elif t == "stream":
            if c["text"].startswith("ELAPSED"):
                _, elapsed, self.tid = c["text"].split()
                self.elapsed = float(elapsed)
        elif t == "status" and c["execution_state"] == "idle":
            self.t_idle = time.perf_counter()
            return True
        return False


def attach(pid):
    """Runs $IPK_ATTACH for kernel pid while the context lasts."""
    cmd = os.environ.get("IPK_ATTACH")
    if not cmd:
        return contextlib.nullcontext()
    p = subprocess.Popen(cmd.format(pid=pid), shell=True, start_new_session=True)
    time.sleep(1)

    @contextlib.contextmanager
    def run():
        try:
            yield
        finally:
            os.killpg(p.pid, signal.SIGINT)
            p.wait()
    return run()


def report(mode, n, ctr, pid, before, after):
    d = {("loop" if k == f"python3/{ctr.tid}" or (k == "main" and str(pid) == ctr.tid) else k):
         after.get(k, 0) - before.get(k, 0) for k in after}
    preempted = d.pop("preempted")
    total = sum(d.values()) - d["sys"]
    threads = " ".join(f"{k}={v:.1f}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]) if v >= 0.05)
    lines = "".join(ctr.text).splitlines()
    lost = n - len(set(lines) & {str(i) for i in range(n)})
    loop = f"{ctr.elapsed:6.2f}s ({n / ctr.elapsed:6.0f} lines/s)" if ctr.elapsed else "? (lost)"
    print(f"{mode:7} loop {loop}  "
          f"input→idle {ctr.t_idle - ctr.t_input:6.2f}s  lines {len(lines)} in {ctr.msgs} msgs, "
          f"lost {lost} ({100 * lost / n:.1f}%)  kernel cpu {total:5.2f}s [{threads}] preempted {preempted}", flush=True)


def direct(n):
    from jupyter_client.manager import start_new_kernel
    km, kc = start_new_kernel(kernel_name=KERNEL)
    try:
        pid = km.provisioner.process.pid
        time.sleep(1)
        before = cpu(pid)
        with attach(pid):
            ctr = Counter(kc.execute(CODE.format(n=n)))
            after = run_direct(kc, ctr, pid)
        report("direct", n, ctr, pid, before, after)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run_direct(kc, ctr, pid):
    """Reads iopub until status idle. libzmq's PUB socket drops what a slow
    reader leaves behind, status idle too: then the end is the
    execute_reply, 2 s after the last message."""
    while True:
        try:
            if ctr.add(kc.get_iopub_msg(timeout=2)):
                break
        except queue.Empty:
            with contextlib.suppress(queue.Empty):
                if kc.get_shell_msg(timeout=0.01):
                    ctr.t_idle = time.perf_counter() - 2
                    break
    return cpu(pid)


def kernel_pid(kid):
    """The process whose command line holds kernel kid's connection file."""
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    if kid.encode() in f.read() and p != str(os.getpid()):
                        return int(p)
            except OSError:
                pass
    raise SystemExit(f"no process for kernel {kid}")


def gateway(url, n):
    import urllib.request
    import websocket
    req = urllib.request.Request(url + "/api/kernels", data=json.dumps({"name": KERNEL}).encode(),
                                 headers={"Content-Type": "application/json"})
    kid = json.load(urllib.request.urlopen(req))["id"]
    try:
        ws = websocket.create_connection(url.replace("http", "ws", 1) + f"/api/kernels/{kid}/channels", timeout=300)
        session = uuid.uuid4().hex

        def send(msg_type, content):
            mid = uuid.uuid4().hex
            ws.send(json.dumps({"channel": "shell", "header": {
                "msg_id": mid, "msg_type": msg_type, "session": session, "username": "bench",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "version": "5.3"},
                "parent_header": {}, "metadata": {}, "content": content}))
            return mid

        mid = send("kernel_info_request", {})
        while json.loads(ws.recv())["parent_header"].get("msg_id") != mid:
            pass
        pid = kernel_pid(kid)
        time.sleep(1)
        before = cpu(pid)
        with attach(pid):
            ctr = Counter(send("execute_request", {"code": CODE.format(n=n), "silent": False}))
            while not ctr.add(json.loads(ws.recv())):
                pass
            after = cpu(pid)
        report("kg", n, ctr, pid, before, after)
        ws.close()
    finally:
        urllib.request.urlopen(urllib.request.Request(url + f"/api/kernels/{kid}", method="DELETE"))


if __name__ == "__main__":
    if sys.argv[1] == "direct":
        direct(int(sys.argv[2]) if len(sys.argv) > 2 else N)
    else:
        gateway(sys.argv[2].rstrip("/"), int(sys.argv[3]) if len(sys.argv) > 3 else N)
