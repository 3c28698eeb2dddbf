package zmq

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

func TestConnectionFileRoundTripIsPrivate(t *testing.T) {
	ci := NewConnectionInfo("127.0.0.1", []int{20001, 20002, 20003, 20004, 20005}, "python3")
	path := filepath.Join(t.TempDir(), "kernel-1.json")
	testkit.NoError(t, WriteConnectionFile(path, ci))
	st, err := os.Stat(path)
	testkit.NoError(t, err)
	testkit.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	back, err := ReadConnectionFile(path)
	testkit.NoError(t, err)
	testkit.Equal(t, back, ci)
	testkit.Equal(t, len(ci.Key), 32)
	other := NewConnectionInfo("127.0.0.1", []int{20001, 20002, 20003, 20004, 20005}, "python3")
	testkit.True(t, other.Key != ci.Key, "two kernels got the same key")
}

// A connection file for another user's kernel is theirs, and a symlink the
// user planted under its name is replaced, not followed.
func TestConnectionFileForAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("only root writes files for other users") // the suite runs as root
	}
	ci := NewConnectionInfo("127.0.0.1", []int{20001, 20002, 20003, 20004, 20005}, "python3")
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	testkit.NoError(t, os.WriteFile(target, []byte("untouched"), 0o644))
	path := filepath.Join(dir, "kernel-1.json")
	testkit.NoError(t, os.Symlink(target, path))
	testkit.NoError(t, WriteConnectionFileFor(path, ci, 65534, 65534))
	st, err := os.Lstat(path)
	testkit.NoError(t, err)
	testkit.Equal(t, st.Mode(), os.FileMode(0o600))
	testkit.Equal(t, st.Sys().(*syscall.Stat_t).Uid, uint32(65534))
	b, err := os.ReadFile(target)
	testkit.NoError(t, err)
	testkit.Equal(t, string(b), "untouched")
	st, err = os.Stat(target)
	testkit.NoError(t, err)
	testkit.Equal(t, st.Sys().(*syscall.Stat_t).Uid, uint32(0))
}

func TestConnectionInfoValidation(t *testing.T) {
	good := ConnectionInfo{IP: "127.0.0.1", Transport: "tcp", ShellPort: 1, IOPubPort: 2, StdinPort: 3,
		ControlPort: 4, HBPort: 5, SignatureScheme: "hmac-sha256"}
	tests := []struct {
		name string
		edit func(*ConnectionInfo)
		ok   bool
	}{
		{"good", func(*ConnectionInfo) {}, true},
		{"ipc transport", func(c *ConnectionInfo) { c.Transport = "ipc" }, false},
		{"bad ip", func(c *ConnectionInfo) { c.IP = "not an ip" }, false},
		{"zero port", func(c *ConnectionInfo) { c.HBPort = 0 }, false},
		{"port too large", func(c *ConnectionInfo) { c.ShellPort = 70000 }, false},
		{"md5 scheme", func(c *ConnectionInfo) { c.SignatureScheme = "hmac-md5" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ci := good
			tt.edit(&ci)
			err := ci.Validate()
			testkit.Equal(t, err == nil, tt.ok)
			if !tt.ok {
				testkit.ErrorIs(t, err, ErrBadConnectionInfo)
			}
		})
	}
}

func TestReadConnectionFileRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.json")
	testkit.NoError(t, os.WriteFile(path, []byte("{not json"), 0o600))
	_, err := ReadConnectionFile(path)
	testkit.ErrorIs(t, err, ErrBadConnectionInfo)
}
