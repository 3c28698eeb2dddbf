// Package unixtest makes real Unix accounts for tests of kernels that run as
// their user: useradd with a home and a group of its own, userdel at the
// end of the test. It needs root (the suite runs as root, in CI too); as
// another user the tests that need it skip, unless
// KERNELGATE_REQUIRE_ROOT=1: then they fail.
package unixtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Account is a Unix account made for a test.
type Account struct {
	Name     string
	UID, GID int
	Home     string
}

// Require skips t unless it runs as root (or fails it, when
// KERNELGATE_REQUIRE_ROOT=1).
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("KERNELGATE_REQUIRE_ROOT") == "1" {
		t.Fatal("root is required to make Unix accounts (KERNELGATE_REQUIRE_ROOT=1)")
	}
	t.Skip("not root: cannot make Unix accounts, skipped")
}

// NewAccount makes an account named prefix-<random> (prefix of at most 20
// characters) with a home directory and a group of its own; it is removed,
// home and all, when t ends.
func NewAccount(t testing.TB, prefix string) Account {
	t.Helper()
	Require(t)
	b := make([]byte, 4)
	rand.Read(b)
	name := prefix + "-" + hex.EncodeToString(b)
	// useradd and userdel take a lock on /etc/passwd that tests of other
	// packages, run in parallel, may hold for a moment.
	if err := retry("useradd", "--create-home", "--user-group", "--shell", "/bin/sh", name); err != nil {
		t.Fatal(err)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	t.Cleanup(func() {
		// A process the test left under the account would make userdel
		// fail, and could be handed to the next account given this uid.
		killAll(uid)
		if err := retry("userdel", "--remove", name); err != nil {
			t.Errorf("removing the test account: %v", err)
		}
	})
	return Account{Name: name, UID: uid, GID: gid, Home: u.HomeDir}
}

// killAll kills every process running as uid, by pid.
func killAll(uid int) {
	procs, _ := filepath.Glob("/proc/[0-9]*/status")
	want := "Uid:\t" + strconv.Itoa(uid) + "\t"
	for _, status := range procs {
		b, err := os.ReadFile(status)
		if err != nil || !bytes.Contains(b, []byte(want)) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(status))); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// retry runs a command until it succeeds, for up to 10 s.
func retry(name string, args ...string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s %v: %w: %s", name, args, err, bytes.TrimSpace(out))
		}
		time.Sleep(100 * time.Millisecond) // the lock is held for milliseconds
	}
}

// PassableDir returns a fresh directory every account may pass through
// (0711, its parents too): a runtime directory in which kernels running as
// the test's accounts reach their own subdirectory. t.TempDir's are 0700.
func PassableDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kernelgate-unixtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "rt")
}
