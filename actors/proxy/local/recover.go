package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/zmq"
)

// processInfo finds a local kernel again after a gateway restart.
type processInfo struct {
	PID int `json:"pid"`
	// Start is the process's start time (/proc/<pid>/stat, clock ticks
	// since boot): a recycled pid has another one.
	Start          uint64 `json:"start_ticks"`
	ConnectionFile string `json:"connection_file"`
	LogFile        string `json:"log_file,omitempty"`
}

func (p processInfo) marshal() json.RawMessage {
	b, _ := json.Marshal(p) // plain fields: cannot fail
	return b
}

// procStat reads a process's start time and state letter.
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// Fields after "(comm)", which may itself hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("unreadable /proc stat")
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return 0, 0, errors.New("short /proc stat")
	}
	start, err = strconv.ParseUint(string(f[19]), 10, 64)
	return start, f[0][0], err
}

// alive reports whether the recorded process still runs (not a zombie, not
// a newer process that got its pid).
func (p processInfo) alive() bool {
	start, state, err := procStat(p.PID)
	return err == nil && start == p.Start && state != 'Z' && state != 'X'
}

// pollInterval is how often an adopted kernel is checked for life.
const pollInterval = 500 * time.Millisecond

// Recover takes back a kernel launched by an earlier gateway process.
func (p *Provisioner) Recover(_ context.Context, req proxy.RecoverRequest) (proxy.Kernel, error) {
	var info processInfo
	if err := json.Unmarshal(req.ProcessInfo, &info); err != nil || info.PID <= 0 {
		return nil, fmt.Errorf("%w: unreadable process info", proxy.ErrGone)
	}
	if !info.alive() {
		removeFiles(info.ConnectionFile, info.LogFile)
		return nil, fmt.Errorf("%w: process %d is not running", proxy.ErrGone, info.PID)
	}
	a := &adopted{ci: req.Connection, info: info, exited: make(chan struct{}), stop: make(chan struct{})}
	go a.watch()
	req.Logger.Info().Int("pid", info.PID).Msg("kernel process recovered")
	return a, nil
}

// adopted is a kernel whose process an earlier gateway started: it is not
// this process's child, so its exit is noticed by polling.
type adopted struct {
	ci     zmq.ConnectionInfo
	info   processInfo
	exited chan struct{}
	stop   chan struct{}
	once   sync.Once
}

func (a *adopted) watch() {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			if !a.info.alive() {
				close(a.exited)
				return
			}
		}
	}
}

func (a *adopted) ConnectionInfo() zmq.ConnectionInfo { return a.ci }
func (a *adopted) Exited() <-chan struct{}            { return a.exited }
func (a *adopted) ProcessInfo() json.RawMessage       { return a.info.marshal() }

// ExitErr cannot tell how the process ended: only its parent could.
func (a *adopted) ExitErr() error {
	return fmt.Errorf("process %d exited (recovered after a gateway restart: no exit status)", a.info.PID)
}

func (a *adopted) Signal(sig syscall.Signal) error {
	if !a.info.alive() {
		return os.ErrProcessDone
	}
	if err := syscall.Kill(-a.info.PID, sig); err != nil {
		return fmt.Errorf("signal %v to kernel process group %d: %w", sig, a.info.PID, err)
	}
	return nil
}

func (a *adopted) Cleanup() error {
	a.once.Do(func() { close(a.stop) })
	if a.info.alive() {
		syscall.Kill(-a.info.PID, syscall.SIGKILL)
	}
	return removeFiles(a.info.ConnectionFile, a.info.LogFile)
}

var _ proxy.Recoverer = (*Provisioner)(nil)
