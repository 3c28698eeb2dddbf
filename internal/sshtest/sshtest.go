// Package sshtest starts real OpenSSH servers (Debian's openssh-server) for
// tests: one per loopback address, all on one port (EG_SSH_PORT is one
// setting for every host), each with its own host key, trusting one
// generated client key, and a known_hosts file naming them all.
package sshtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

// Sshd is the path of the OpenSSH server.
const Sshd = "/usr/sbin/sshd"

// Hosts are several OpenSSH servers.
type Hosts struct {
	Addrs      []string // one loopback address each
	Port       int
	User       string
	KeyFile    string // the client's private key
	KnownHosts string
	servers    map[string]*exec.Cmd
	dir        string
}

// Require skips the test when sshd is not installed (make deps installs it).
func Require(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Sshd); err != nil {
		t.Skip("openssh-server is not installed (make deps installs it)")
	}
}

// Start runs one sshd on each address; they stop at the end of the test.
func Start(t testing.TB, addrs ...string) *Hosts {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	h := &Hosts{Addrs: addrs, User: currentUser(t), KeyFile: filepath.Join(dir, "client_key"),
		KnownHosts: filepath.Join(dir, "known_hosts"), servers: make(map[string]*exec.Cmd), dir: dir}
	keygen(t, h.KeyFile)
	pub, err := os.ReadFile(h.KeyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd refuses to start without its privilege-separation directory.
	os.MkdirAll("/run/sshd", 0o755)
	h.Port = commonFreePort(t, addrs)
	var known bytes.Buffer
	for _, a := range addrs {
		hostKey := filepath.Join(dir, "host_"+a)
		keygen(t, hostKey)
		hostPub, err := os.ReadFile(hostKey + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(hostPub))
		fmt.Fprintf(&known, "[%s]:%d %s %s\n", a, h.Port, f[0], f[1])
		h.start(t, a, hostKey)
	}
	if err := os.WriteFile(h.KnownHosts, known.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for a := range h.servers {
			h.Stop(a)
		}
	})
	return h
}

func (h *Hosts) start(t testing.TB, addr, hostKey string) {
	t.Helper()
	conf := filepath.Join(h.dir, "sshd_"+addr+".conf")
	cfg := strings.Join([]string{
		"ListenAddress " + net.JoinHostPort(addr, strconv.Itoa(h.Port)),
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + filepath.Join(h.dir, "authorized_keys"),
		"PidFile none", "StrictModes no", "UsePAM no", "PasswordAuthentication no",
		"KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "LogLevel FATAL",
	}, "\n") + "\n"
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Sshd, "-D", "-e", "-f", conf)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd on %s: %v", addr, err)
	}
	h.servers[addr] = cmd
	testkit.Eventually(t, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(h.Port)), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// Stop stops the sshd on addr (its sessions' processes are not touched).
func (h *Hosts) Stop(addr string) {
	if cmd, ok := h.servers[addr]; ok {
		cmd.Process.Kill()
		cmd.Wait()
		delete(h.servers, addr)
	}
}

func keygen(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}

func currentUser(t testing.TB) string {
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// commonFreePort finds a port free on every address.
func commonFreePort(t testing.TB, addrs []string) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", net.JoinHostPort(addrs[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		held := []net.Listener{ln}
		ok := true
		for _, a := range addrs[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, l)
		}
		for _, l := range held {
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal(errors.New("no port free on every address"))
	return 0
}
