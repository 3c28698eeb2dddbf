// Package leaktest finds goroutines a test left behind.
//
// Start a test with
//
//	defer leaktest.Check(t)()
//
// It records the goroutines alive at that moment; when the returned function
// runs it waits up to five seconds for every goroutine started since to exit,
// then fails the test with the stacks of those that did not.
package leaktest

import (
	"runtime"
	"sort"
	"strings"
	"time"
)

// TB is the part of testing.TB leaktest needs.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// Timeout is how long Check waits for goroutines to exit.
var Timeout = 5 * time.Second

// Check snapshots the running goroutines and returns a function that fails t
// if goroutines started after the snapshot are still running.
func Check(t TB) func() {
	before := snapshot()
	return func() {
		t.Helper()
		deadline := time.Now().Add(Timeout)
		for {
			leaked := newSince(before)
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				sort.Strings(leaked)
				t.Errorf("leaktest: %d goroutines leaked:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond) // poll interval, not a wait for a condition
		}
	}
}

// ignored are goroutines that belong to the runtime or the test framework,
// two that are not leaks: fasthttp's clock (one per process, started on
// first use) and protoactor's dead-letter throttle (one per burst of dead
// letters, gone after a second: late timers of stopped actors start it),
// and one that is zmq4's, not ours: its PUB writer loses the wake-up of a
// Close that races a send (zmq4 v0.17.0, pub.go) and waits forever. Only
// kernels have PUB sockets (the synthetic kernel of tests and benchmarks);
// the gateway has none.
var ignored = []string{
	"fasthttp.updateServerDate",
	"actor.NewDeadLetter.NewThrottle",
	"zmq4.(*pubMWriter).run",
	"created by testing.",
	"created by runtime.gc",
	"created by os/signal.Notify",
	"signal.signal_recv",
	"runtime.ensureSigM",
	"testing.(*M).startAlarm",
	"testing.RunTests",
}

func newSince(before map[string]bool) []string {
	var out []string
	for id, stack := range goroutines() {
		if !before[id] {
			out = append(out, stack)
		}
	}
	return out
}

func snapshot() map[string]bool {
	m := make(map[string]bool)
	for id := range goroutines() {
		m[id] = true
	}
	return m
}

// goroutines returns the stacks of interesting goroutines by id.
func goroutines() map[string]string {
	buf := make([]byte, 2<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, body, _ := strings.Cut(g, "\n")
		if body == "" || isIgnored(g) {
			continue
		}
		// "goroutine 18 [chan receive]:" → "18"
		fields := strings.Fields(header)
		if len(fields) < 2 {
			continue
		}
		out[fields[1]] = g
	}
	// The goroutine calling us is never a leak.
	delete(out, currentID())
	return out
}

func isIgnored(stack string) bool {
	for _, s := range ignored {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}

func currentID() string {
	var b [64]byte
	n := runtime.Stack(b[:], false)
	f := strings.Fields(string(b[:n]))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}
