package kernelspecs

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/rs/zerolog"
)

func writeSpec(t *testing.T, root, name, body string, files ...string) string {
	t.Helper()
	dir := filepath.Join(root, "kernels", name)
	testkit.NoError(t, os.MkdirAll(dir, 0o755))
	testkit.NoError(t, os.WriteFile(filepath.Join(dir, "kernel.json"), []byte(body), 0o644))
	for _, f := range files {
		testkit.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644))
	}
	return dir
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		body string
		ok   bool
		mode string
		pp   string
		pool int
	}{
		{"minimal", `{"argv":["python3","-f","{connection_file}"],"display_name":"P","language":"python"}`, true, "signal", "", 0},
		{"message interrupts", `{"argv":["k"],"interrupt_mode":"message"}`, true, "message", "", 0},
		{"process proxy", `{"argv":["k"],"metadata":{"process_proxy":{"class_name":"enterprise_gateway.services.processproxies.processproxy.LocalProcessProxy","config":{"authorized_users":"a,b"}}}}`, true, "signal", "enterprise_gateway.services.processproxies.processproxy.LocalProcessProxy", 0},
		{"pool size", `{"argv":["k"],"metadata":{"kernelgate":{"pool_size":3}}}`, true, "signal", "", 3},
		{"negative pool size", `{"argv":["k"],"metadata":{"kernelgate":{"pool_size":-1}}}`, false, "", "", 0},
		{"not json", `{"argv":`, false, "", "", 0},
		{"empty argv", `{"argv":[]}`, false, "", "", 0},
		{"argv not strings", `{"argv":[1,2]}`, false, "", "", 0},
		{"bad interrupt mode", `{"argv":["k"],"interrupt_mode":"telepathy"}`, false, "", "", 0},
		{"metadata not object", `{"argv":["k"],"metadata":[1]}`, false, "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("k", "/d", []byte(tt.body))
			if !tt.ok {
				testkit.ErrorIs(t, err, ErrInvalid)
				return
			}
			testkit.NoError(t, err)
			testkit.Equal(t, s.InterruptMode, tt.mode)
			testkit.Equal(t, s.ProcessProxy.ClassName, tt.pp)
			testkit.Equal(t, s.PoolSize, tt.pool)
			testkit.True(t, s.Env != nil && s.Metadata != nil, "nil env or metadata would marshal as null")
		})
	}
}

// FuzzParse: any kernel.json content parses or fails cleanly.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"argv":["python3","-f","{connection_file}"],"display_name":"P","language":"python","metadata":{"debugger":true}}`))
	f.Add([]byte(`{"argv":["k"],"metadata":{"process_proxy":{"class_name":"x","config":{"a":1}}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("k", "/d", data)
		if err == nil && len(s.Argv) == 0 {
			t.Fatal("accepted a spec without argv")
		}
	})
}

func TestDiscoverPrecedenceAndProblems(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	writeSpec(t, first, "Python3", `{"argv":["first"]}`, "logo-64x64.png", "kernel.js", "notes.txt")
	writeSpec(t, second, "python3", `{"argv":["second"]}`)
	writeSpec(t, second, "broken", `{"argv":`)
	writeSpec(t, second, "other", `{"argv":["o"]}`)
	// A kernel.json that is a directory is a problem, not a crash.
	testkit.NoError(t, os.MkdirAll(filepath.Join(second, "kernels", "dirjson", "kernel.json"), 0o755))

	specs, problems, err := Discover([]string{first, second, filepath.Join(t.TempDir(), "missing")})
	testkit.NoError(t, err)
	testkit.Equal(t, specs["python3"].Argv, []string{"first"})
	testkit.Equal(t, specs["python3"].Resources, []string{"kernel.js", "logo-64x64.png"})
	testkit.Equal(t, specs["other"].Argv, []string{"o"})
	testkit.Equal(t, len(specs), 2)
	testkit.Equal(t, len(problems), 2)
}

func TestResourcePathStaysInsideTheSpec(t *testing.T) {
	root := t.TempDir()
	dir := writeSpec(t, root, "k", `{"argv":["k"]}`, "logo-32x32.png")
	secret := filepath.Join(root, "secret.txt")
	testkit.NoError(t, os.WriteFile(secret, []byte("s"), 0o600))
	testkit.NoError(t, os.Symlink(secret, filepath.Join(dir, "logo-evil.png")))
	s, err := Load("k", dir)
	testkit.NoError(t, err)
	for _, tt := range []struct {
		file string
		ok   bool
	}{
		{"logo-32x32.png", true},
		{"kernel.json", false},
		{"../secret.txt", false},
		{"/etc/passwd", false},
		{"logo-evil.png", false}, // a symlink out of the directory
		{"", false},
	} {
		_, ok := s.ResourcePath(tt.file)
		testkit.Equal(t, ok, tt.ok)
	}
	testkit.Equal(t, ResourceKey("logo-64x64.png"), "logo-64x64")
	testkit.Equal(t, ResourceKey("kernel.js"), "kernel.js")
}

func TestCacheReloadsOnChangeAndFilters(t *testing.T) {
	root := t.TempDir()
	writeSpec(t, root, "a", `{"argv":["a"]}`)
	writeSpec(t, root, "b", `{"argv":["b"]}`)
	c := NewCache(CacheOptions{Path: []string{root}, Default: "python3", Allowed: []string{"a", "c"}, Logger: zerolog.Nop()})
	snap := c.Snapshot()
	testkit.Equal(t, snap.Names, []string{"a"})
	testkit.Equal(t, snap.Default, "a") // python3 is absent: fall back to the first
	testkit.Equal(t, c.Reload(), false)

	writeSpec(t, root, "c", `{"argv":["c"]}`)
	testkit.Eventually(t, 5*time.Second, func() error {
		c.Reload()
		if got := c.Snapshot().Names; len(got) != 2 {
			return os.ErrNotExist
		}
		return nil
	})
	testkit.True(t, snap != c.Snapshot(), "snapshot was mutated in place")
	testkit.Equal(t, len(snap.Names), 1)
}

func TestAccess(t *testing.T) {
	plain := Spec{}
	listed := Spec{ProcessProxy: ProcessProxy{Config: map[string]any{
		"authorized_users": "alice, bobby", "unauthorized_users": []any{"mallory"}}}}
	tests := []struct {
		name   string
		access Access
		spec   Spec
		user   string
		want   bool
	}{
		{"open", Access{}, plain, "anyone", true},
		{"globally denied", Access{Unauthorized: []string{"root"}}, plain, "root", false},
		{"global allow list", Access{Authorized: []string{"alice"}}, plain, "bob", false},
		{"spec list replaces global", Access{Authorized: []string{"bob"}}, listed, "alice", true},
		{"no substring match", Access{}, listed, "bob", false},
		{"spec denial", Access{}, listed, "mallory", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testkit.Equal(t, tt.access.Allows(tt.spec, tt.user), tt.want)
		})
	}
}
