package http

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/local"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

// persistent configures gateways that record their kernels in store and run
// them detached in runtime; keep leaves them running when the gateway stops.
func persistent(records store.FileStore, runtime string, keep bool) func(*Config, *actors.Config) {
	return func(_ *Config, a *actors.Config) {
		a.Store, a.KeepKernelsOnStop = records, keep
		a.Proxies = proxy.NewRegistry(&local.Provisioner{Ports: testPorts, RuntimeDir: runtime, Detached: true})
	}
}

func TestKernelSurvivesAGatewayRestart(t *testing.T) {
	records := store.FileStore{Dir: filepath.Join(t.TempDir(), "kernel_sessions")}
	runtime := filepath.Join(t.TempDir(), "runtime")

	first := newHarness(t, persistent(records, runtime, true))
	id := decode[actors.Model](t, first.expect("POST", "/api/kernels", `{"name":"python3","env":{"KERNEL_USERNAME":"alice"}}`, 201)).ID
	w := first.dialWS(id, "notebook", true)
	w.reply(w.execute("x = 41"), 30*time.Second)
	first.stop()
	// Its clients are told to come back (1001), not that the kernel is gone.
	_, err := w.recv(10 * time.Second)
	testkit.True(t, websocket.IsCloseError(err, actors.CloseGoingAway), "websocket ended with %v, want 1001", err)
	recs, err := records.Load()
	testkit.NoError(t, err)
	testkit.Equal(t, len(recs), 1)
	info, err := os.Stat(filepath.Join(records.Dir, id+".json"))
	testkit.NoError(t, err)
	testkit.Equal(t, info.Mode().Perm(), os.FileMode(0o600)) // it holds the kernel's key

	second := newHarness(t, persistent(records, runtime, false))
	m := decode[actors.Model](t, second.expect("GET", "/api/kernels/"+id, "", 200))
	testkit.Equal(t, m.ID, id)
	back := second.dialWS(id, "notebook", true)
	out := back.reply(back.execute("print(x + 1)"), 30*time.Second)
	testkit.Equal(t, pick(t, out, "iopub", "stream").content["text"], any("42\n"))

	// A restart of the recovered kernel is an ordinary launch, recorded anew.
	second.expect("POST", "/api/kernels/"+id+"/restart", "", 200)
	second.expect("DELETE", "/api/kernels/"+id, "", 204)
	recs, err = records.Load()
	testkit.NoError(t, err)
	testkit.Equal(t, len(recs), 0)
	entries, _ := os.ReadDir(runtime)
	testkit.Equal(t, len(entries), 0) // connection file and log gone with the kernel
}

func TestDeadRecordedKernelsAreForgotten(t *testing.T) {
	records := store.FileStore{Dir: filepath.Join(t.TempDir(), "kernel_sessions")}
	runtime := filepath.Join(t.TempDir(), "runtime")
	first := newHarness(t, persistent(records, runtime, true))
	id := decode[actors.Model](t, first.expect("POST", "/api/kernels", `{"name":"python3"}`, 201)).ID
	first.stop()
	recs, err := records.Load()
	testkit.NoError(t, err)
	testkit.Equal(t, len(recs), 1)
	// The kernel dies while no gateway runs; a garbage record lies next to it.
	var info struct {
		PID int `json:"pid"`
	}
	testkit.NoError(t, json.Unmarshal(recs[0].ProcessInfo, &info))
	testkit.NoError(t, syscall.Kill(-info.PID, syscall.SIGKILL))
	testkit.Eventually(t, 10*time.Second, func() error {
		if testkit.ProcessState(info.PID) != "" && testkit.ProcessState(info.PID) != "Z" {
			return errors.New("still running")
		}
		return nil
	})
	testkit.NoError(t, os.WriteFile(filepath.Join(records.Dir, "junk.json"), []byte("{not json"), 0o600))

	second := newHarness(t, persistent(records, runtime, false))
	second.expect("GET", "/api/kernels/"+id, "", 404)
	recs, _ = records.Load()
	testkit.Equal(t, len(recs), 0)
}
