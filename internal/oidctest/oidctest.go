// Package oidctest starts a real OpenID Connect provider for tests: Dex
// (github.com/dexidp/dex), built by `make dex-tools` into tools/bin from its
// own module (tools/dex), on a loopback port with in-memory storage, two
// static clients and two static users with groups, and gets tokens from it
// with the password grant — no browser needed.
//
// Without the Dex binary the tests that need it skip, unless
// KERNELGATE_REQUIRE_IDENTITY=1 (`make test` sets it): then they fail.
package oidctest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
	"golang.org/x/crypto/bcrypt"
)

// The static clients: tokens are issued to one of them (their "aud").
const (
	ClientID      = "kernelgate"
	OtherClientID = "other-app" // for tokens meant for another application
)

// The static users, their groups, and the password of both.
const (
	Alice      = "alice"
	Bob        = "bob"
	UsersGroup = "users"
	AdminGroup = "kernelgate-admins" // Bob's
	Password   = "correct horse battery staple"
)

// Options change how Dex runs; zero fields keep Dex's defaults.
type Options struct {
	// KeysRotationPeriod is how often Dex rotates its signing key (default
	// 6 h). Dex checks every 30 s whether the period has passed, so a
	// rotation comes at most that late.
	KeysRotationPeriod time.Duration
	// IDTokenTTL is how long tokens are valid (default 1 h).
	IDTokenTTL time.Duration
}

// Dex is a running Dex.
type Dex struct {
	// Issuer is the issuer URL, as in the tokens' "iss".
	Issuer string

	bin     string
	dir     string
	addr    string
	secrets map[string]string // client id → secret
	cmd     *exec.Cmd
	exited  chan struct{}
	client  *http.Client
}

// Binary returns the path of Dex's binary: KERNELGATE_DEX, or tools/bin/dex
// at the root of the module (found upwards from the working directory).
func Binary() (string, error) {
	if p := os.Getenv("KERNELGATE_DEX"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("KERNELGATE_DEX: %w", err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "tools", "dex", "go.mod")); err == nil {
			bin := filepath.Join(dir, "tools", "bin", "dex")
			if _, err := os.Stat(bin); err != nil {
				return "", fmt.Errorf("no Dex binary at %s (make dex-tools builds it)", bin)
			}
			return bin, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no tools/dex above the working directory")
		}
		dir = parent
	}
}

// Require skips t unless Dex's binary is there (or fails it, when
// KERNELGATE_REQUIRE_IDENTITY=1), and returns its path.
func Require(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("KERNELGATE_REQUIRE_IDENTITY") == "1" {
			t.Fatalf("Dex is required (KERNELGATE_REQUIRE_IDENTITY=1): %v", err)
		}
		t.Skipf("Dex is missing, skipped: %v (KERNELGATE_REQUIRE_IDENTITY=1 makes this a failure)", err)
	}
	return bin
}

// Start starts Dex; it stops when t ends.
func Start(t testing.TB, opts Options) *Dex {
	t.Helper()
	d := &Dex{
		bin:     Require(t),
		dir:     t.TempDir(),
		secrets: map[string]string{ClientID: randomHex(), OtherClientID: randomHex()},
		// No keep-alive: a test checking for leaked goroutines would see
		// the idle connections' goroutines.
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	t.Cleanup(d.Stop)
	var err error
	for range 3 { // the port is free when picked, but may be taken before Dex binds it
		var ports []int
		if ports, err = testkit.FreePorts(1); err != nil {
			break
		}
		d.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		d.Issuer = "http://" + d.addr + "/dex"
		if err = d.writeConfig(opts); err != nil {
			break
		}
		if err = d.start(); err == nil {
			return d
		}
	}
	t.Fatal(err)
	return nil
}

func (d *Dex) writeConfig(opts Options) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(Password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	user := func(name string, groups ...string) map[string]any {
		return map[string]any{
			"email": name + "@example.com", "hash": string(hash), "username": name,
			"preferredUsername": name, "userID": name + "-id", "groups": groups,
		}
	}
	client := func(id string) map[string]any {
		return map[string]any{"id": id, "name": id, "secret": d.secrets[id],
			"redirectURIs": []string{"http://127.0.0.1/callback"}}
	}
	rotation := opts.KeysRotationPeriod
	if rotation == 0 {
		rotation = 6 * time.Hour
	}
	ttl := opts.IDTokenTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	// Dex reads YAML, of which JSON is a part.
	conf := map[string]any{
		"issuer":  d.Issuer,
		"storage": map[string]any{"type": "memory"},
		"web":     map[string]any{"http": d.addr},
		"logger":  map[string]any{"level": "warn"},
		"signer": map[string]any{"type": "local",
			"config": map[string]any{"keysRotationPeriod": rotation.String()}},
		"expiry":           map[string]any{"idTokens": ttl.String()},
		"oauth2":           map[string]any{"passwordConnector": "local", "skipApprovalScreen": true},
		"enablePasswordDB": true,
		"staticClients":    []any{client(ClientID), client(OtherClientID)},
		"staticPasswords":  []any{user(Alice, UsersGroup), user(Bob, UsersGroup, AdminGroup)},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d.dir, "config.yaml"), b, 0o600)
}

func (d *Dex) start() error {
	logf, err := os.OpenFile(filepath.Join(d.dir, "dex.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(d.bin, "serve", filepath.Join(d.dir, "config.yaml"))
	cmd.Dir = d.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dex: %w", err)
	}
	d.cmd, d.exited = cmd, make(chan struct{})
	exited := d.exited
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := d.client.Get(d.Issuer + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-exited:
			d.Stop()
			return fmt.Errorf("dex exited while starting\n%s", d.logTail())
		default:
		}
		if time.Now().After(deadline) {
			d.Stop()
			return fmt.Errorf("dex not ready after 30s: %w\n%s", err, d.logTail())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// Restart stops Dex and starts it again on the same address. Its storage is
// in memory, so it comes back with new signing keys: the provider rotated
// its keys and withdrew the old ones, on demand.
func (d *Dex) Restart(t testing.TB) {
	t.Helper()
	d.Stop()
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
}

// Stop stops Dex; it may be called more than once.
func (d *Dex) Stop() {
	if d.cmd == nil {
		return
	}
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.exited
	d.cmd = nil
}

func (d *Dex) logTail() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dex.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "dex log (tail):\n" + string(b)
}

// Tokens are what the token endpoint answers.
type Tokens struct {
	IDToken     string `json:"id_token"`
	AccessToken string `json:"access_token"`
}

// Token logs user in with the password grant as client clientID and returns
// the tokens (with the groups scope, so they carry the user's groups).
func (d *Dex) Token(t testing.TB, user, clientID string) Tokens {
	t.Helper()
	form := url.Values{
		"grant_type": {"password"},
		"username":   {user + "@example.com"},
		"password":   {Password},
		"scope":      {"openid profile email groups"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, d.secrets[clientID])
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("dex token: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dex token for %s: %s: %s", user, resp.Status, b)
	}
	var tok Tokens
	if err := json.Unmarshal(b, &tok); err != nil || tok.IDToken == "" {
		t.Fatalf("dex token for %s: %v: %s", user, err, b)
	}
	return tok
}

// KeyIDs returns the ids of the keys Dex publishes now.
func (d *Dex) KeyIDs(t testing.TB) []string {
	t.Helper()
	resp, err := d.client.Get(d.Issuer + "/keys")
	if err != nil {
		t.Fatalf("dex keys: %v", err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("dex keys: %v", err)
	}
	var ids []string
	for _, k := range set.Keys {
		ids = append(ids, k.Kid)
	}
	return ids
}

func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
