package k8stest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// component is one program of the control plane running as a child
// process, its output in a log file.
type component struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // how it exited; read only after done
}

// startComponent runs bin with args in dir. The child gets a minimal
// environment (HOME is dir, so that nothing reads the developer's ~/.kube or
// ~/.kwok) and its own process group, and dies with the test binary.
func startComponent(name, bin, dir string, args ...string) (*component, error) {
	log := filepath.Join(dir, name+".log")
	out, err := os.Create(log)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stdout = out
	cmd.Stderr = out
	// Pdeathsig is tied to the thread that forked the child; the Go runtime
	// only ends threads locked by goroutines that exit, and none of ours is.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &component{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// exited returns an error describing the exit, with the end of the log, if
// the process has exited, and nil while it runs.
func (c *component) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited (%v); the end of its log:\n%s", c.name, c.err, tail(c.log, 30))
	default:
		return nil
	}
}

// stop asks the process group to terminate and kills it after grace. It
// continues the process first: a stopped process would not act on SIGTERM.
func (c *component) stop(grace time.Duration) {
	pgid := -c.cmd.Process.Pid
	syscall.Kill(pgid, syscall.SIGCONT)
	syscall.Kill(pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		syscall.Kill(pgid, syscall.SIGKILL)
		<-c.done
	}
}

// signal sends sig to the process group.
func (c *component) signal(sig syscall.Signal) error {
	if err := c.exited(); err != nil {
		return err
	}
	if err := syscall.Kill(-c.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("signal %s: %w", c.name, err)
	}
	return nil
}

// stopped reports whether every thread of the process is stopped: a
// SIGSTOP takes effect in each thread on its own, after kill returns.
func (c *component) stopped() (bool, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", c.cmd.Process.Pid))
	if err != nil || len(tasks) == 0 {
		return false, fmt.Errorf("%s: no threads in /proc: %v", c.name, err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			return false, err
		}
		// "pid (comm) state ...": comm may hold anything but ends at the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return false, fmt.Errorf("%s: unexpected %s", c.name, task)
		}
		if b[i+2] != 'T' {
			return false, nil
		}
	}
	return true, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// errExited joins the exits of any components that are no longer running.
func errExited(cs ...*component) error {
	var errs []error
	for _, c := range cs {
		if c == nil {
			continue
		}
		if err := c.exited(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
