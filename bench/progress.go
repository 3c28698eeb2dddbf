package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress shows how far a run is.
type Progress interface {
	// Begin starts a scenario of total units (operations, messages or
	// seconds).
	Begin(name string, total float64)
	// Add counts units done.
	Add(n float64)
	// Follow reads the units done from done every 100 ms until stop.
	Follow(done func() float64) (stop func())
	// End closes the scenario with its result.
	End(name string, res *Result)
}

// NewProgress returns a live bar for a terminal, plain lines otherwise.
func NewProgress(w io.Writer) Progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &lineProgress{w: w, tty: tty}
}

// lineProgress redraws one line on a terminal (\r), or prints a line at
// every quarter otherwise.
type lineProgress struct {
	w   io.Writer
	tty bool

	mu          sync.Mutex
	name        string
	total, done float64
	began       time.Time
	quarter     int
	drawn       time.Time
}

func (p *lineProgress) Begin(name string, total float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.name, p.total, p.done, p.began, p.quarter = name, total, 0, time.Now(), 0
	if !p.tty {
		fmt.Fprintf(p.w, "%s: started\n", name)
	}
	p.draw(true)
}

func (p *lineProgress) Add(n float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.draw(false)
}

func (p *lineProgress) set(v float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = v
	p.draw(false)
}

func (p *lineProgress) Follow(done func() float64) func() {
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				p.set(done())
				return
			case <-t.C:
				p.set(done())
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop); <-finished }) }
}

func (p *lineProgress) End(name string, res *Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("%s: done in %.1fs, %d ops, %d errors", name, res.Seconds, res.Ops, res.Errors)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s\n", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// draw renders the bar (at most every 100 ms unless forced) or, without a
// terminal, a line per quarter done.
func (p *lineProgress) draw(force bool) {
	frac := 0.0
	if p.total > 0 {
		frac = min(p.done/p.total, 1)
	}
	if !p.tty {
		for q := int(frac * 4); p.quarter < q && p.quarter < 3; {
			p.quarter++
			fmt.Fprintf(p.w, "%s: %d%% (%.1fs)\n", p.name, p.quarter*25, time.Since(p.began).Seconds())
		}
		return
	}
	if !force && time.Since(p.drawn) < 100*time.Millisecond {
		return
	}
	p.drawn = time.Now()
	const width = 30
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r\033[K%-8s [%s%s] %3.0f%% %5.1fs", p.name, strings.Repeat("#", n), strings.Repeat(".", width-n),
		frac*100, time.Since(p.began).Seconds())
}

// silent is the Progress of a run nobody watches.
type silent struct{}

func (silent) Begin(string, float64)        {}
func (silent) Add(float64)                  {}
func (silent) Follow(func() float64) func() { return func() {} }
func (silent) End(string, *Result)          {}
