// Package local is the process proxy that runs kernels as child processes of
// the gateway, each in its own process group.
package local

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/ports"
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
	Ports *ports.Allocator
	// RuntimeDir holds connection files; it is created 0700 (0711 under
	// impersonation: each user's files are in a 0700 directory of theirs
	// inside it).
	RuntimeDir string
	// Detached starts kernels that outlive the gateway process (kept
	// across restarts): each in a session of its own, its output to
	// RuntimeDir/kernel-<id>.log rather than a pipe that would break when
	// the gateway goes.
	Detached bool
	// Impersonate, when set, runs each kernel as its user's Unix account
	// (see Impersonation); nil runs kernels as the gateway's user.
	Impersonate *Impersonation
}

var _ proxy.Provisioner = (*Provisioner)(nil)

// Launch writes a connection file and starts the kernelspec's argv.
func (p *Provisioner) Launch(ctx context.Context, req proxy.LaunchRequest) (proxy.Kernel, error) {
	dir, acct, err := p.prepare(req.Env)
	if err != nil {
		return nil, err
	}
	ci, err := p.Ports.ConnectionInfo(req.Spec.Name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", proxy.ErrLaunch, err)
	}
	k := &kernel{ci: ci, ports: p.Ports, exited: make(chan struct{}),
		connFile: filepath.Join(dir, "kernel-"+req.KernelID+".json")}
	uid, gid := -1, -1
	if acct != nil {
		uid, gid = acct.uid, acct.gid
	}
	if err := zmq.WriteConnectionFileFor(k.connFile, ci, uid, gid); err != nil {
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
	env := req.Env
	if acct != nil {
		env = acct.env(env)
	}
	if !p.Detached {
		// A kernel that is not meant to outlive the gateway ends with it,
		// even when the gateway is killed: the kernel's own parent check
		// (ipykernel polls JPY_PARENT_PID) and the kernel's death signal.
		env = maps.Clone(env)
		env["JPY_PARENT_PID"] = strconv.Itoa(os.Getpid())
	}
	cmd.Env = envList(env)
	cmd.Dir = req.Dir
	if cmd.Dir == "" && acct != nil {
		cmd.Dir = acct.workDir()
	}
	// A detached kernel writes to a log file; else its output comes back
	// through a pipe (out) into the gateway's log.
	var w, out *os.File
	if p.Detached {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		k.logFile = filepath.Join(dir, "kernel-"+req.KernelID+".log")
		w, err = openLog(k.logFile, acct)
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		out, w, err = os.Pipe()
	}
	if acct != nil {
		cmd.SysProcAttr.Credential = acct.credential()
	}
	if err != nil {
		k.release()
		return nil, fmt.Errorf("%w: kernel output: %w", proxy.ErrLaunch, err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		if out != nil {
			out.Close()
		}
		k.release()
		return nil, fmt.Errorf("%w: %s: %w", proxy.ErrLaunch, argv[0], err)
	}
	k.cmd = cmd
	k.info = processInfo{PID: cmd.Process.Pid, ConnectionFile: k.connFile, LogFile: k.logFile}
	k.info.Start, _, _ = procStat(cmd.Process.Pid)
	log := req.Logger.With().Int("pid", cmd.Process.Pid).Logger()
	if acct != nil {
		log = log.With().Int("uid", acct.uid).Logger()
	}
	log.Info().Str("argv0", argv[0]).Msg("kernel process started")
	if out != nil {
		// The output pipe closes when the kernel and every child it forked
		// have closed it; the process group is killed at shutdown, so this
		// ends.
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
	}
	go func() {
		k.err = cmd.Wait()
		close(k.exited)
	}()
	return k, nil
}

type kernel struct {
	ci       zmq.ConnectionInfo
	ports    *ports.Allocator
	connFile string
	logFile  string
	cmd      *exec.Cmd
	info     processInfo
	exited   chan struct{}
	err      error
}

func (k *kernel) ConnectionInfo() zmq.ConnectionInfo { return k.ci }
func (k *kernel) Exited() <-chan struct{}            { return k.exited }
func (k *kernel) ExitErr() error                     { return k.err }
func (k *kernel) ProcessInfo() json.RawMessage       { return k.info.marshal() }

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
	return removeFiles(k.connFile, k.logFile)
}

// removeFiles removes a kernel's connection file and log, if any.
func removeFiles(paths ...string) error {
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove %s: %w", filepath.Base(p), err)
		}
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
