package bench

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

// TestScale2000 runs `make scale`'s script with 2,000 kernels (fewer where
// the open-file limit holds fewer; the script says so), a burst of 500 and
// a short idle window: a gateway, kernel farms and the bench as processes
// of their own, everything on loopback. It checks what must hold at any
// speed: every kernel started, listed and answered, the burst all
// answered 201, and the gateway's goroutines and open files per kernel
// (a regression to a goroutine or a connection more per kernel fails it).
// The speed figures are make scale's to report, not this test's.
func TestScale2000(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 2,500 kernels (about a minute and a half)")
	}
	bin := testkit.KernelgateBinary(t)
	out := t.TempDir()
	cmd := exec.Command("bash", "scale.sh", bin, out, "2000")
	cmd.Env = append(os.Environ(), "SCALE_BURST=500", "SCALE_BENCH_ARGS=--scale-idle 5 --scale-checkpoints 1000 --quiet")
	log, err := cmd.CombinedOutput()
	testkit.NoError(t, err)
	t.Logf("%s", log)

	data, err := os.ReadFile(filepath.Join(out, "scale.json"))
	testkit.NoError(t, err)
	var r ScaleResult
	testkit.NoError(t, json.Unmarshal(data, &r))
	testkit.True(t, r.KernelsLive >= 1000, "only %d kernels live", r.KernelsLive)
	testkit.Equal(t, r.KernelsLive, r.Target)
	testkit.Equal(t, r.StartErrors, 0)
	testkit.Equal(t, r.ListCount, r.KernelsLive)
	testkit.Equal(t, r.RTTErrors, 0)
	testkit.Equal(t, r.BurstOK, r.BurstN)
	testkit.True(t, r.BurstN == 500, "burst of %d", r.BurstN)
	// Per kernel: five ZMQ connections and a websocket (the rest: the
	// bench's HTTP connections, among them the burst's idle keep-alives,
	// and closing burst kernels); a reader goroutine each, the websocket's
	// writer and the runner's sender (an idle kernel has no goroutine for
	// provisioner calls). A goroutine or a connection more per kernel is
	// over the bound.
	testkit.True(t, r.FDs <= 6*r.KernelsLive+r.KernelsLive/2, "%d open files for %d kernels", r.FDs, r.KernelsLive)
	testkit.True(t, r.Goroutines <= 9*r.KernelsLive, "%d goroutines for %d kernels", r.Goroutines, r.KernelsLive)
}
