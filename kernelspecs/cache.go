package kernelspecs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/rs/zerolog"
)

// Snapshot is an immutable view of the discovered kernelspecs.
type Snapshot struct {
	Specs   map[string]Spec
	Names   []string // sorted
	Default string
}

// Get returns the named spec.
func (s *Snapshot) Get(name string) (Spec, bool) {
	sp, ok := s.Specs[strings.ToLower(name)]
	return sp, ok
}

// CacheOptions configure a Cache.
type CacheOptions struct {
	// Path is the search path; default SearchPath().
	Path []string
	// Default is the default kernel name (EG_DEFAULT_KERNEL_NAME).
	Default string
	// Allowed, when non-empty, is the only kernel names served
	// (EG_ALLOWED_KERNELS).
	Allowed []string
	// Poll is how often the directories are checked for changes.
	Poll   time.Duration
	Logger zerolog.Logger
}

// Cache holds the kernelspecs in memory. Readers call Snapshot, which never
// blocks; Run reloads in the background when the directories change.
type Cache struct {
	opts   CacheOptions
	snap   atomic.Pointer[Snapshot]
	mu     sync.Mutex // serializes reloads
	print  string
	warned map[string]bool
	failed uint64 // reloads that met a failure that passes
}

// NewCache loads the kernelspecs once and returns the cache.
func NewCache(opts CacheOptions) *Cache {
	if opts.Path == nil {
		opts.Path = SearchPath()
	}
	if opts.Poll <= 0 {
		opts.Poll = 2 * time.Second
	}
	c := &Cache{opts: opts, warned: make(map[string]bool)}
	c.Reload()
	return c
}

// Snapshot returns the current specs.
func (c *Cache) Snapshot() *Snapshot { return c.snap.Load() }

// Reload rescans the directories if they changed since the last scan, and
// reports whether it did.
func (c *Cache) Reload() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	fp := fingerprint(c.opts.Path)
	if fp == c.print && c.snap.Load() != nil {
		return false
	}
	specs, problems, err := Discover(c.opts.Path)
	if err != nil {
		// Keep serving what was loaded last; the next poll tries again.
		if c.failed++; lograte.Crossed(c.failed-1, c.failed) {
			c.opts.Logger.Warn().Err(err).Uint64("times", c.failed).Msg("kernelspecs not reloaded; serving the ones loaded before")
		}
		if c.snap.Load() == nil {
			c.snap.Store(&Snapshot{Specs: map[string]Spec{}, Default: strings.ToLower(c.opts.Default)})
		}
		return false
	}
	c.print = fp
	for _, p := range problems {
		key := p.Dir + "\x00" + p.Err.Error()
		if !c.warned[key] {
			c.warned[key] = true
			c.opts.Logger.Warn().Err(p.Err).Str("dir", p.Dir).Msg("kernelspec skipped")
		}
	}
	if len(c.opts.Allowed) > 0 {
		for name := range specs {
			if !slices.Contains(c.opts.Allowed, name) {
				delete(specs, name)
			}
		}
	}
	snap := &Snapshot{Specs: specs, Default: strings.ToLower(c.opts.Default)}
	for name := range specs {
		snap.Names = append(snap.Names, name)
	}
	slices.Sort(snap.Names)
	if _, ok := specs[snap.Default]; !ok && len(snap.Names) > 0 {
		c.opts.Logger.Warn().Str("default", snap.Default).Str("using", snap.Names[0]).
			Msg("default kernelspec not found")
		snap.Default = snap.Names[0]
	}
	c.snap.Store(snap)
	c.opts.Logger.Debug().Int("kernelspecs", len(specs)).Msg("kernelspecs loaded")
	return true
}

// Run reloads every Poll interval until ctx ends.
func (c *Cache) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Reload()
		}
	}
}

// fingerprint summarizes the modification times and sizes of everything
// discovery reads, so a change is noticed without parsing anything.
func fingerprint(path []string) string {
	var b strings.Builder
	stamp := func(p string) {
		if st, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s:%d:%d;", p, st.ModTime().UnixNano(), st.Size())
		}
	}
	for _, root := range path {
		kernels := filepath.Join(root, "kernels")
		stamp(kernels)
		entries, _ := os.ReadDir(kernels)
		for _, e := range entries {
			stamp(filepath.Join(kernels, e.Name()))
			stamp(filepath.Join(kernels, e.Name(), "kernel.json"))
		}
	}
	return b.String()
}
