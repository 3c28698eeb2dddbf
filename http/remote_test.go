package http

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/actors/proxy/ssh"
	"github.com/kernelgate/kernelgate/internal/sshtest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/rs/zerolog"
)

// remoteHarness is a gateway whose "remote" kernels run on three real
// sshd hosts (127.0.0.2–4, all this machine) through the distributed proxy,
// started by kernelgate's own launcher (this test binary) or by
// testdata/eg_launcher.py, a Python launcher written to EG's protocol.
func remoteHarness(t *testing.T) *harness {
	hosts := sshtest.Start(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	l := remote.NewListener(remote.ListenerConfig{IP: "127.0.0.1", Logger: log})
	t.Cleanup(l.Close)
	p, err := ssh.New(ssh.Config{Hosts: hosts.Addrs, User: hosts.User, Port: hosts.Port, KeyFiles: []string{hosts.KeyFile},
		KnownHosts: hosts.KnownHosts, CommandTimeout: 20 * time.Second, CommTimeout: 2 * time.Second, PortRange: "0..0",
		LogDir: t.TempDir(), Listener: l, Logger: log})
	testkit.NoError(t, err)
	t.Cleanup(p.Close)
	var cache *kernelspecs.Cache
	h := newHarness(t, func(_ *Config, a *actors.Config) {
		a.Proxies.Register(p, ssh.ClassNames...)
		a.LivenessInterval = 300 * time.Millisecond
		a.PollInterval = 100 * time.Millisecond
		cache = a.Specs
	})
	self, err := os.Executable()
	testkit.NoError(t, err)
	egLauncher, err := filepath.Abs(filepath.Join("testdata", "eg_launcher.py"))
	testkit.NoError(t, err)
	placeholders := []string{"--kernel-id", "{kernel_id}", "--response-address", "{response_address}",
		"--public-key", "{public_key}", "--port-range", "{port_range}"}
	distributed := map[string]any{"process_proxy": map[string]any{
		"class_name": "enterprise_gateway.services.processproxies.distributed.DistributedProcessProxy"}}
	for name, argv := range map[string][]string{
		"remote": append(append([]string{self, "launch"}, placeholders...),
			"--", testkit.Python(), "-m", "ipykernel_launcher", "-f", "{connection_file}"),
		"eg-python": append([]string{testkit.Python(), egLauncher}, placeholders...),
		"silent":    {"sleep", "300"}, // a launcher that never calls back
	} {
		dir := filepath.Join(h.specs, "kernels", name)
		testkit.NoError(t, os.MkdirAll(dir, 0o755))
		b, err := json.Marshal(map[string]any{"argv": argv, "display_name": name, "language": "python", "metadata": distributed})
		testkit.NoError(t, err)
		testkit.NoError(t, os.WriteFile(filepath.Join(dir, "kernel.json"), b, 0o644))
	}
	cache.Reload()
	return h
}

// printed runs code and returns what it printed.
func (w *wsClient) printed(code string) string {
	w.t.Helper()
	return pick(w.t, w.reply(w.execute(code), 60*time.Second), "iopub", "stream").content["text"].(string)
}

func TestRemoteKernelThroughTheWebsocket(t *testing.T) {
	h := remoteHarness(t)
	id := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"remote","env":{"KERNEL_NOTE":"it's a \"test\" & more"}}`, 201)).ID
	w := h.dialWS(id, "remote-1", true)
	w.ready(60 * time.Second)
	testkit.Equal(t, w.printed("print(6*7)"), "42\n")
	// The client's variable crossed the SSH command line intact.
	testkit.Equal(t, w.printed("import os; print(os.environ['KERNEL_NOTE'], os.environ['KERNEL_ID'] == "+strconv.Quote(id)+")"),
		"it's a \"test\" & more True\n")

	testkit.Equal(t, w.answerInput("alice", 30*time.Second), "got alice\n")
	// An interrupt travels REST → kernel actor → comm port → launcher →
	// SIGINT for the kernel's process group.
	interrupt := func() { h.expect("POST", "/api/kernels/"+id+"/interrupt", "", 204) }
	testkit.Equal(t, w.interruptSleep(interrupt, 30*time.Second), any("KeyboardInterrupt"))

	// Restart: a new launch with new ports, the same kernel id.
	ports := `import json, ipykernel.connect; c = json.load(open(ipykernel.connect.get_connection_file())); print(sorted(c[k] for k in c if k.endswith("_port")))`
	before := w.printed(ports)
	h.expect("POST", "/api/kernels/"+id+"/restart", "", 200)
	w.ready(60 * time.Second)
	after := w.printed(ports)
	testkit.True(t, before != after, "the restarted kernel has the same ports %s", after)
	testkit.Equal(t, decode[actors.Model](t, h.expect("GET", "/api/kernels/"+id, "", 200)).ID, id)

	// A kernel killed on its host is found gone by the liveness poll and
	// restarted like a local one.
	var pid int
	fmt.Sscan(w.printed("import os; print(os.getpid())"), &pid)
	testkit.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	w.until(30*time.Second, isStatus("restarting"))
	w.ready(60 * time.Second)
	testkit.Equal(t, w.printed("print('back')"), "back\n")

	h.expect("DELETE", "/api/kernels/"+id, "", 204)
	testkit.NoKernelProcesses(t, id, 20*time.Second)
}

// The compatibility proof: a payload encrypted by an independent
// implementation of EG's format (Python, pycryptodome) is decoded, and the
// kernel it describes is served, interrupted and stopped.
func TestEGFormatLauncherIsUnderstood(t *testing.T) {
	if _, err := os.Stat("/usr/lib/python3/dist-packages/Cryptodome"); err != nil {
		t.Skip("python3-pycryptodome is not installed (make deps installs it)")
	}
	h := remoteHarness(t)
	id := decode[actors.Model](t, h.expect("POST", "/api/kernels", `{"name":"eg-python"}`, 201)).ID
	w := h.dialWS(id, "eg-1", false)
	w.ready(60 * time.Second)
	testkit.Equal(t, w.printed("print(6*7)"), "42\n")
	interrupt := func() { h.expect("POST", "/api/kernels/"+id+"/interrupt", "", 204) }
	testkit.Equal(t, w.interruptSleep(interrupt, 30*time.Second), any("KeyboardInterrupt"))
	h.expect("DELETE", "/api/kernels/"+id, "", 204)
	testkit.NoKernelProcesses(t, id, 20*time.Second)
}

// A launcher that never calls back: the start fails with a clear 500 at the
// launch timeout, and what was started on the host is killed.
func TestRemoteLaunchTimeout(t *testing.T) {
	h := remoteHarness(t)
	id := "7b0c6a5e-34a4-4b7e-9d8f-0123456789ab"
	body := h.expect("POST", "/api/kernels", `{"name":"silent","env":{"KERNEL_ID":"`+id+`","KERNEL_LAUNCH_TIMEOUT":"3"}}`, 500)
	e := decode[map[string]string](t, body)
	testkit.True(t, strings.Contains(e["message"], "launch timeout"), "unclear error: %s", body)
	testkit.NoKernelProcesses(t, id, 20*time.Second)
	testkit.Equal(t, string(h.expect("GET", "/api/kernels", "", 200)), "[]")
}
