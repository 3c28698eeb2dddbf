package ssh

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/bench/synthkernel"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/sshtest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/kernelgate/kernelgate/launcher"
	"github.com/rs/zerolog"
)

// The test binary is also the launcher and the kernel the tests start over
// SSH (`<test binary> launch ...`, `<test binary> synth-kernel ...`).
func TestMain(m *testing.M) {
	launcher.RunIfAsked()
	synthkernel.ServeIfAsked()
	os.Exit(m.Run())
}

var hostAddrs = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}

type rig struct {
	t     *testing.T
	hosts *sshtest.Hosts
	p     *Provisioner
	spec  kernelspecs.Spec
}

func newRig(t *testing.T, algorithm string, hosts ...string) *rig {
	h := sshtest.Start(t, hostAddrs...)
	if hosts == nil {
		hosts = hostAddrs
	}
	l := remote.NewListener(remote.ListenerConfig{IP: "127.0.0.1", KeyBits: 1024, Logger: zerolog.Nop()})
	t.Cleanup(l.Close)
	p, err := New(Config{Hosts: hosts, LoadBalancing: algorithm, User: h.User, Port: h.Port,
		KeyFiles: []string{h.KeyFile}, KnownHosts: h.KnownHosts, CommandTimeout: 10 * time.Second,
		CommTimeout: 2 * time.Second, PortRange: "0..0", MinPortRangeSize: ports.MinRangeSize,
		LogDir: t.TempDir(), Listener: l, Logger: zerolog.Nop()})
	testkit.NoError(t, err)
	t.Cleanup(p.Close)
	exe, err := os.Executable()
	testkit.NoError(t, err)
	spec := kernelspecs.Spec{Name: "remote-synth", ProcessProxy: kernelspecs.ProcessProxy{ClassName: "ssh"},
		Argv: []string{exe, "launch", "--kernel-id", "{kernel_id}", "--response-address", "{response_address}",
			"--public-key", "{public_key}", "--port-range", "{port_range}", "--", exe, "synth-kernel", "-f", "{connection_file}"}}
	return &rig{t: t, hosts: h, p: p, spec: spec}
}

// launch starts a kernel; it is stopped at the end of the test.
func (r *rig) launch(env map[string]string) (proxy.Kernel, error) {
	id := fmt.Sprintf("%08d-0000-4000-8000-%012d", os.Getpid(), time.Now().UnixNano()%1e12)
	e := map[string]string{"KERNEL_ID": id}
	for k, v := range env {
		e[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k, err := r.p.Launch(ctx, proxy.LaunchRequest{KernelID: id, Spec: r.spec, Env: e, Logger: zerolog.Nop()})
	if err == nil {
		r.t.Cleanup(func() { stop(r.t, k, id) })
	}
	return k, err
}

// stop ends a kernel as the kernel actor does, and checks that nothing of
// it is left running.
func stop(t *testing.T, k proxy.Kernel, id string) {
	proxy.Stop(k, time.Second)
	k.Cleanup()
	testkit.NoKernelProcesses(t, id, 10*time.Second)
}

func hostOf(k proxy.Kernel) string { return k.ConnectionInfo().IP }

func TestRoundRobinSpreadsKernels(t *testing.T) {
	r := newRig(t, RoundRobin)
	count := map[string]int{}
	for range 6 {
		k, err := r.launch(nil)
		testkit.NoError(t, err)
		count[hostOf(k)]++
		testkit.NoError(t, k.Signal(0))
		testkit.NoError(t, k.ConnectionInfo().Validate())
	}
	testkit.Equal(t, count, map[string]int{"127.0.0.2": 2, "127.0.0.3": 2, "127.0.0.4": 2})
	testkit.Equal(t, r.p.Load(), count)
}

func TestLeastConnectionPicksTheEmptiest(t *testing.T) {
	r := newRig(t, LeastConnection)
	for _, h := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.4"} {
		_, err := r.launch(map[string]string{"KERNEL_REMOTE_HOST": h}) // KERNEL_REMOTE_HOST wins
		testkit.NoError(t, err)
	}
	testkit.Equal(t, r.p.Load(), map[string]int{"127.0.0.2": 2, "127.0.0.4": 1})
	k, err := r.launch(nil)
	testkit.NoError(t, err)
	testkit.Equal(t, hostOf(k), "127.0.0.3")
	k, err = r.launch(nil)
	testkit.NoError(t, err)
	testkit.True(t, hostOf(k) != "127.0.0.2", "least-connection chose the fullest host")
}

func TestHostDownFallsThroughToTheNext(t *testing.T) {
	r := newRig(t, RoundRobin, "127.0.0.5", "127.0.0.3") // nothing listens on 127.0.0.5
	k, err := r.launch(nil)
	testkit.NoError(t, err)
	testkit.Equal(t, hostOf(k), "127.0.0.3")

	start := time.Now()
	_, err = r.launch(map[string]string{"KERNEL_REMOTE_HOST": "127.0.0.5"})
	testkit.ErrorIs(t, err, proxy.ErrLaunch)
	testkit.True(t, strings.Contains(err.Error(), "refused"), "error does not say why: %v", err)
	t.Logf("a refusing host failed the launch in %v", time.Since(start))
}

func TestUnknownHostKeyIsRefused(t *testing.T) {
	r := newRig(t, RoundRobin)
	testkit.NoError(t, os.WriteFile(r.hosts.KnownHosts, nil, 0o600))
	p, err := New(Config{Hosts: hostAddrs, User: r.hosts.User, Port: r.hosts.Port, KeyFiles: []string{r.hosts.KeyFile},
		KnownHosts: r.hosts.KnownHosts, CommandTimeout: 5 * time.Second, PortRange: "0..0", LogDir: t.TempDir(),
		Listener: r.p.cfg.Listener, Logger: zerolog.Nop()})
	testkit.NoError(t, err)
	defer p.Close()
	r.p = p
	_, err = r.launch(map[string]string{"KERNEL_REMOTE_HOST": "127.0.0.2"})
	testkit.ErrorIs(t, err, proxy.ErrLaunch)
	testkit.True(t, strings.Contains(err.Error(), "knownhosts"), "error does not name the host-key check: %v", err)
}

// A launcher that never calls back fails the launch at its timeout, and the
// process it started is killed.
func TestLaunchTimeoutKillsTheRemoteProcess(t *testing.T) {
	r := newRig(t, RoundRobin)
	r.spec.Argv = []string{"sleep", "300"}
	id := "00000000-0000-4000-8000-00000000dead"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := r.p.Launch(ctx, proxy.LaunchRequest{KernelID: id, Spec: r.spec, Env: map[string]string{"KERNEL_ID": id}, Logger: zerolog.Nop()})
	testkit.ErrorIs(t, err, proxy.ErrLaunch)
	testkit.True(t, strings.Contains(err.Error(), "launch timeout"), "error does not say it timed out: %v", err)
	testkit.Equal(t, len(testkit.KernelProcesses(id)), 0)
	testkit.Equal(t, r.p.Load(), map[string]int{})
}

func TestLaunchCommandQuotes(t *testing.T) {
	cmd := launchCommand(map[string]string{"KERNEL_X": "it's $HOME", "PATH": "/gateway/bin", "BAD NAME": "x"},
		[]string{"/bin/k", "a b"}, "/tmp/k.log")
	testkit.Equal(t, cmd, `export KERNEL_X='it'\''s $HOME'; mkdir -p '/tmp'; setsid nohup '/bin/k' 'a b' >> '/tmp/k.log' 2>&1 < /dev/null & echo $!`)
}

func TestBalancerOrder(t *testing.T) {
	b, err := newBalancer(RoundRobin)
	testkit.NoError(t, err)
	hosts := []string{"a", "b", "c"}
	testkit.Equal(t, b.order(hosts), []string{"a", "b", "c"})
	testkit.Equal(t, b.order(hosts), []string{"b", "c", "a"})
	_, err = newBalancer("random")
	testkit.True(t, err != nil, "an unknown algorithm was accepted")
}

// A restarted gateway takes a remote kernel back from its record while the
// launcher answers, and reports it gone once it does not.
func TestRecoverAfterGatewayRestart(t *testing.T) {
	defer leaktest.Check(t)()
	r := newRig(t, RoundRobin)
	id := "00000000-0000-4000-8000-0000000c0ffe"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := proxy.LaunchRequest{KernelID: id, Spec: r.spec, Env: map[string]string{"KERNEL_ID": id}, Logger: zerolog.Nop()}
	k, err := r.p.Launch(ctx, req)
	testkit.NoError(t, err)

	// The next gateway: a new provisioner, the record's fields only.
	next, err := New(r.p.cfg)
	testkit.NoError(t, err)
	defer next.Close()
	rec := proxy.RecoverRequest{KernelID: id, Spec: r.spec, Connection: k.ConnectionInfo(), ProcessInfo: k.ProcessInfo(), Logger: zerolog.Nop()}
	back, err := next.Recover(ctx, rec)
	testkit.NoError(t, err)
	testkit.Equal(t, back.ConnectionInfo(), k.ConnectionInfo())
	testkit.Equal(t, next.Load(), map[string]int{hostOf(k): 1})

	stop(t, back, id)
	_, err = next.Recover(ctx, rec)
	testkit.ErrorIs(t, err, proxy.ErrGone)
	testkit.Equal(t, next.Load(), map[string]int{})
	k.Cleanup() // the first gateway's handle: its clean-up finds nothing left
	r.p.Close()
	r.p.cfg.Listener.Close()
}
