// Package local is the process proxy that runs kernels as child processes of
// the gateway, each in its own process group.
package local

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/zmq"
)

// ClassNames are the process-proxy names that select this provisioner: ours
// and Enterprise Gateway's.
var ClassNames = []string{
	"local",
	"enterprise_gateway.services.processproxies.processproxy.LocalProcessProxy",
}

// Provisioner launches local kernels.
type Provisioner struct {
	// Ports hands out the five channel ports.
	Ports *zmq.PortAllocator
	// RuntimeDir holds connection files; it is created 0700.
	RuntimeDir string
}

var _ proxy.Provisioner = (*Provisioner)(nil)

// Launch writes a connection file and starts the kernelspec's argv.
func (p *Provisioner) Launch(ctx context.Context, req proxy.LaunchRequest) (proxy.Kernel, error) {
	if err := os.MkdirAll(p.RuntimeDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: runtime dir: %w", proxy.ErrLaunch, err)
	}
	if err := os.Chmod(p.RuntimeDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: runtime dir: %w", proxy.ErrLaunch, err)
	}
	ci, err := zmq.NewConnectionInfo(p.Ports, req.Spec.Name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
	}
	k := &kernel{ci: ci, ports: p.Ports, exited: make(chan struct{}),
		connFile: filepath.Join(p.RuntimeDir, "kernel-"+req.KernelID+".json")}
	if err := zmq.WriteConnectionFile(k.connFile, ci); err != nil {
		k.release()
		return nil, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
	}
	argv := make([]string, len(req.Spec.Argv))
	for i, a := range req.Spec.Argv {
		a = strings.ReplaceAll(a, "{connection_file}", k.connFile)
		a = strings.ReplaceAll(a, "{resource_dir}", req.Spec.Dir)
		argv[i] = a
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = envList(req.Env)
	cmd.Dir = req.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, w, err := os.Pipe()
	if err != nil {
		k.release()
		return nil, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		out.Close()
		k.release()
		return nil, fmt.Errorf("%w: %s: %w", proxy.ErrLaunch, argv[0], err)
	}
	k.cmd = cmd
	log := req.Logger.With().Int("pid", cmd.Process.Pid).Logger()
	log.Info().Str("argv0", argv[0]).Msg("kernel process started")
	// The output pipe closes when the kernel and every child it forked have
	// closed it; the process group is killed at shutdown, so this ends.
	go func() {
		defer out.Close()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			if line := sc.Text(); strings.TrimSpace(line) != "" {
				log.Info().Str("output", line).Msg("kernel output")
			}
		}
	}()
	go func() {
		k.err = cmd.Wait()
		close(k.exited)
	}()
	return k, nil
}

type kernel struct {
	ci       zmq.ConnectionInfo
	ports    *zmq.PortAllocator
	connFile string
	cmd      *exec.Cmd
	exited   chan struct{}
	err      error
}

func (k *kernel) ConnectionInfo() zmq.ConnectionInfo { return k.ci }
func (k *kernel) Exited() <-chan struct{}            { return k.exited }
func (k *kernel) ExitErr() error                     { return k.err }

// Signal signals the kernel's whole process group, so children the kernel
// forked get interrupts and kills too.
func (k *kernel) Signal(sig syscall.Signal) error {
	select {
	case <-k.exited:
		if sig == 0 {
			return os.ErrProcessDone
		}
		// The leader is gone but its group may linger: still signal it.
	default:
	}
	if err := syscall.Kill(-k.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("signal %v to kernel process group %d: %w", sig, k.cmd.Process.Pid, err)
	}
	return nil
}

func (k *kernel) Cleanup() error {
	// Leftover children of the kernel go with it.
	syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
	return k.release()
}

func (k *kernel) release() error {
	c := k.ci
	k.ports.Release(c.ShellPort, c.IOPubPort, c.StdinPort, c.ControlPort, c.HBPort)
	if err := os.Remove(k.connFile); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove connection file: %w", err)
	}
	return nil
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
