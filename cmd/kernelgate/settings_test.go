package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/privatedir"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

func envFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestSettingsPrecedence(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c serveConfig)
	}{
		{"defaults are EG's", nil, nil, func(t *testing.T, c serveConfig) {
			testkit.Equal(t, c.IP, "127.0.0.1")
			testkit.Equal(t, c.Port, 8888)
			testkit.Equal(t, c.MaxKernelsPerUser, -1)
			testkit.Equal(t, c.UnauthorizedUsers, []string{"root"})
			testkit.Equal(t, c.LaunchTimeout, 30*time.Second)
			testkit.Equal(t, c.ListKernels, false)
		}},
		{"env sets", nil, map[string]string{"EG_PORT": "9999", "EG_LIST_KERNELS": "True", "EG_KERNEL_LAUNCH_TIMEOUT": "2.5"},
			func(t *testing.T, c serveConfig) {
				testkit.Equal(t, c.Port, 9999)
				testkit.Equal(t, c.ListKernels, true)
				testkit.Equal(t, c.LaunchTimeout, 2500*time.Millisecond)
			}},
		{"flag wins over env", []string{"--port", "7777"}, map[string]string{"EG_PORT": "9999"},
			func(t *testing.T, c serveConfig) { testkit.Equal(t, c.Port, 7777) }},
		{"KG_ fallback", nil, map[string]string{"KG_PORT": "6666"},
			func(t *testing.T, c serveConfig) { testkit.Equal(t, c.Port, 6666) }},
		{"EG_ before KG_", nil, map[string]string{"KG_PORT": "6666", "EG_PORT": "5555"},
			func(t *testing.T, c serveConfig) { testkit.Equal(t, c.Port, 5555) }},
		{"empty env clears a list", nil, map[string]string{"EG_UNAUTHORIZED_USERS": ""},
			func(t *testing.T, c serveConfig) { testkit.Equal(t, len(c.UnauthorizedUsers), 0) }},
		{"lists", []string{"--client-envs", "A, B,,C"}, nil,
			func(t *testing.T, c serveConfig) { testkit.Equal(t, c.ClientEnvs, []string{"A", "B", "C"}) }},
		{"counts", []string{"--pool", "Python3=4, ir=0"}, map[string]string{"KERNELGATE_POOL": "x=1"},
			func(t *testing.T, c serveConfig) { testkit.Equal(t, c.Pool, map[string]int{"python3": 4, "ir": 0}) }},
		{"durations", []string{"--heartbeat-interval", "500ms"}, nil,
			func(t *testing.T, c serveConfig) { testkit.Equal(t, c.HeartbeatInterval, 500*time.Millisecond) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c serveConfig
			testkit.NoError(t, serveSettings(&c, io.Discard).parse(tt.args, envFrom(tt.env)))
			tt.check(t, c)
		})
	}
}

func TestSettingsErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--port", "x"}, nil, "invalid value"},
		{nil, map[string]string{"EG_PORT": "eighty"}, "EG_PORT"},
		{nil, map[string]string{"EG_LIST_KERNELS": "maybe"}, "EG_LIST_KERNELS"},
		{[]string{"--nope"}, nil, "not defined"},
		{nil, map[string]string{"KERNELGATE_POOL": "python3=-1"}, "name=N"},
		{[]string{"--pool", "python3"}, nil, "name=N"},
		{[]string{"extra"}, nil, "unexpected argument"},
	} {
		var c serveConfig
		err := serveSettings(&c, io.Discard).parse(tt.args, envFrom(tt.env))
		testkit.True(t, err != nil && strings.Contains(err.Error(), tt.want), "%v: error %v, want %q", tt.args, err, tt.want)
	}
}

func TestServeHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	code := run([]string{"serve", "--help"}, &out, &out)
	testkit.Equal(t, code, 0)
	var c serveConfig
	for _, st := range serveSettings(&c, io.Discard).list {
		testkit.True(t, strings.Contains(out.String(), "--"+st.flag), "help lacks --%s", st.flag)
		testkit.True(t, strings.Contains(out.String(), st.env[0]), "help lacks %s", st.env[0])
	}
}

func TestServeStartsAndStops(t *testing.T) {
	defer leaktest.Check(t)()
	var c serveConfig
	testkit.NoError(t, serveSettings(&c, io.Discard).parse([]string{"--port", "0", "--runtime-dir", t.TempDir()}, envFrom(nil)))
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, &out, io.Discard, func(a net.Addr) { addr <- a }) }()
	a := testkit.Recv(t, addr, 10*time.Second)
	conn, err := net.Dial("tcp", a.String())
	testkit.NoError(t, err)
	conn.Close()
	cancel()
	testkit.NoError(t, testkit.Recv(t, done, 30*time.Second))
	testkit.True(t, strings.Contains(out.String(), "is available at http://127.0.0.1:"), "banner: %q", out.String())
}

// A runtime directory that is a symlink (planted in /tmp by another user,
// say) is refused at start with a clear error, and its target untouched.
func TestServeRefusesAPlantedRuntimeDir(t *testing.T) {
	target := t.TempDir()
	testkit.NoError(t, os.Chmod(target, 0o755))
	link := filepath.Join(t.TempDir(), "kernelgate-0")
	testkit.NoError(t, os.Symlink(target, link))
	var c serveConfig
	testkit.NoError(t, serveSettings(&c, io.Discard).parse([]string{"--port", "0", "--runtime-dir", link}, envFrom(nil)))
	err := serve(context.Background(), c, io.Discard, io.Discard, nil)
	testkit.True(t, errors.Is(err, privatedir.ErrSymlink), "serve returned %v, want a refusal of the symlink", err)
	st, err := os.Stat(target)
	testkit.NoError(t, err)
	testkit.Equal(t, st.Mode().Perm(), os.FileMode(0o755))
}
