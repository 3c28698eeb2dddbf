package kubernetes

import (
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// launcherProc is a kernelspec's argv launcher (EG's
// launch_kubernetes.py) running on the gateway's host.
type launcherProc struct {
	cmd  *exec.Cmd
	out  *tail
	done chan struct{} // closed once it has exited
	err  error         // how it exited; valid after done
}

// startLauncher runs the kernelspec's argv, placeholders filled, with the
// kernel's environment and what reaches the API server, as EG runs it.
func (l *launch) startLauncher() error {
	env := maps.Clone(l.env)
	maps.Copy(env, l.p.cfg.LauncherEnv)
	list := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		list = append(list, k+"="+env[k])
	}
	argv := l.args.Argv(l.req.Spec.Argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = list
	out := &tail{max: maxLauncherOutput}
	cmd.Stdout, cmd.Stderr = out, out
	// A group of its own, so that whatever it starts is killed with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the kernelspec's launcher: %w", err)
	}
	lp := &launcherProc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		lp.err = cmd.Wait()
		close(lp.done)
		if s := lp.output(); s != "" {
			l.log.Debug().Str("output", s).Msg("the kernelspec's launcher exited")
		}
	}()
	l.launcher = lp
	return nil
}

// kill ends the launcher and what it started, if it still runs.
func (lp *launcherProc) kill() {
	if lp == nil {
		return
	}
	select {
	case <-lp.done:
	default:
		syscall.Kill(-lp.cmd.Process.Pid, syscall.SIGKILL)
		<-lp.done
	}
}

func (lp *launcherProc) output() string { return strings.TrimSpace(lp.out.String()) }

// maxLauncherOutput bounds what is kept of a launcher's output: its last
// lines say why it failed.
const maxLauncherOutput = 8 << 10

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
