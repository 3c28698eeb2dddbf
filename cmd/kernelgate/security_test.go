package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/bench"
	"github.com/kernelgate/kernelgate/internal/testcerts"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/internal/unixtest"
	"github.com/rs/zerolog"
)

func TestSecuritySettings(t *testing.T) {
	parse := func(args []string, env map[string]string) serveConfig {
		t.Helper()
		var c serveConfig
		testkit.NoError(t, serveSettings(&c, io.Discard).parse(args, envFrom(env)))
		return c
	}
	c := parse(nil, nil)
	testkit.Equal(t, c.Security.AuthCacheTTL, 300*time.Second)
	testkit.Equal(t, c.Security.OIDCUsernameClaim, "preferred_username")
	testkit.Equal(t, c.Security.ProhibitedUIDs, []int{0})
	testkit.Equal(t, c.Security.ProhibitedGIDs, []int{0})
	testkit.Equal(t, c.Security.HubAPIURL, "")

	// A Hub service gets JUPYTERHUB_API_URL from the Hub; ours wins.
	c = parse(nil, map[string]string{"JUPYTERHUB_API_URL": "http://hub:8081/hub/api"})
	testkit.Equal(t, c.Security.HubAPIURL, "http://hub:8081/hub/api")
	c = parse(nil, map[string]string{"JUPYTERHUB_API_URL": "http://hub/hub/api", "KERNELGATE_JUPYTERHUB_API_URL": "http://other/hub/api"})
	testkit.Equal(t, c.Security.HubAPIURL, "http://other/hub/api")
	c = parse([]string{"--prohibited-uids", "0, 1000", "--oidc-admin-groups", "ops,admins"},
		map[string]string{"KG_CERTFILE": "/c.pem", "KERNELGATE_AUTH_CACHE_TTL": "2.5"})
	testkit.Equal(t, c.Security.ProhibitedUIDs, []int{0, 1000})
	testkit.Equal(t, c.Security.OIDCAdminGroups, []string{"ops", "admins"})
	testkit.Equal(t, c.Security.CertFile, "/c.pem")
	testkit.Equal(t, c.Security.AuthCacheTTL, 2500*time.Millisecond)

	// EG aborts on a uid that is not a number; so do we.
	var bad serveConfig
	err := serveSettings(&bad, io.Discard).parse(nil, envFrom(map[string]string{"EG_PROHIBITED_UIDS": "0,root"}))
	testkit.True(t, err != nil && strings.Contains(err.Error(), "EG_PROHIBITED_UIDS"), "error %v", err)
}

// TestBuildSecurity: the settings are checked before anything is served.
func TestBuildSecurity(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	cert, key := ca.Server(t, "gw")
	tokenFile := filepath.Join(t.TempDir(), "token")
	testkit.NoError(t, os.WriteFile(tokenFile, []byte("  file-token \nignored\n"), 0o600))
	closed := filepath.Join(t.TempDir(), "rt") // t.TempDir is 0700: no user passes
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error; "" = no error
	}{
		{"nothing", nil, nil, ""},
		{"token and token file", []string{"--auth-token-file", tokenFile}, map[string]string{"EG_AUTH_TOKEN": "x"}, "keep one"},
		{"missing token file", []string{"--auth-token-file", tokenFile + ".nope"}, nil, "no such file"},
		{"bad Hub URL", []string{"--jupyterhub-api-url", "hub:8081"}, nil, "not an http(s) URL"},
		{"negative cache TTL", []string{"--jupyterhub-api-url", "http://hub", "--auth-cache-ttl", "-1"}, nil, "negative"},
		{"issuer without audience", []string{"--oidc-issuer", "http://dex/dex"}, nil, "audience is required"},
		{"audience without issuer", []string{"--oidc-audience", "kernelgate"}, nil, "need --oidc-issuer"},
		{"key without certificate", []string{"--keyfile", key}, nil, "need --certfile"},
		{"unloadable certificate", []string{"--certfile", key, "--keyfile", key}, nil, "tlsfiles"},
		{"TLS", []string{"--certfile", cert, "--keyfile", key, "--client-ca", ca.CertFile}, nil, ""},
		{"impersonation without authentication", []string{"--impersonate", "--runtime-dir", unixtest.PassableDir(t)}, nil, "needs authentication"},
		{"impersonation behind a closed directory", []string{"--impersonate", "--auth-token-file", tokenFile, "--runtime-dir", filepath.Join(closed, "x")}, nil, "not passable"},
		{"impersonation", []string{"--impersonate", "--auth-token-file", tokenFile, "--runtime-dir", unixtest.PassableDir(t)}, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c serveConfig
			testkit.NoError(t, serveSettings(&c, io.Discard).parse(tt.args, envFrom(tt.env)))
			sec, err := buildSecurity(&c, zerolog.Nop())
			if tt.want == "" {
				testkit.NoError(t, err)
				sec.identity.Close()
				return
			}
			testkit.True(t, err != nil && strings.Contains(err.Error(), tt.want), "error %v, want %q", err, tt.want)
		})
	}

	// The token file's first line is the token.
	var c serveConfig
	testkit.NoError(t, serveSettings(&c, io.Discard).parse([]string{"--auth-token-file", tokenFile, "--jupyterhub-api-url", "http://hub/hub/api"}, envFrom(nil)))
	sec, err := buildSecurity(&c, zerolog.Nop())
	testkit.NoError(t, err)
	defer sec.identity.Close()
	testkit.Equal(t, c.AuthToken, "file-token")
	testkit.True(t, len(sec.identity) == 1, "identity providers %v", sec.identity)
	testkit.True(t, strings.Contains(strings.Join(sec.secrets, " "), "file-token"), "the token is not among the secrets kept from kernels")
	_, err = sec.identity.Identify(context.Background(), "")
	testkit.True(t, err != nil, "an empty token was accepted")
}

// copyForAccount copies the test binary where account can run it and makes
// it a runtime directory of its own; it returns both paths.
func copyForAccount(t *testing.T, self string, account unixtest.Account) (bin, runtime string) {
	t.Helper()
	dir := filepath.Dir(unixtest.PassableDir(t))
	b, err := os.ReadFile(self)
	testkit.NoError(t, err)
	bin = filepath.Join(dir, "kernelgate.test")
	testkit.NoError(t, os.WriteFile(bin, b, 0o755))
	home := filepath.Join(dir, "home")
	testkit.NoError(t, os.Mkdir(home, 0o700))
	testkit.NoError(t, os.Chown(home, account.UID, account.GID))
	return bin, filepath.Join(home, "rt")
}

// TestServeHidesItsSecretsFromItsKernels: a gateway that cannot impersonate
// runs its kernels as its own uid. os.Unsetenv does not change what
// /proc/<pid>/environ shows — the environment the process started with —
// but the gateway makes itself non-dumpable, so that a kernel of its uid can
// no longer read that file, nor its memory; and its kernels' environment
// holds none of its credentials.
func TestServeHidesItsSecretsFromItsKernels(t *testing.T) {
	account := unixtest.NewAccount(t, "kgt-gw")
	const shared, hubToken = "shared-SECRET-0123456789", "hub-SECRET-abcdefghij"
	g := startGatewayWith(t, gatewayOptions{as: &account, env: []string{"EG_AUTH_TOKEN=" + shared,
		"JUPYTERHUB_API_TOKEN=" + hubToken, "MY_COPY=" + shared}}, "--inherited-envs", "MY_COPY,JUPYTERHUB_API_TOKEN")
	c, err := bench.NewGateway(bench.Target{URL: g.url, Token: shared, Kernel: "python3", Protocol: "v1"})
	testkit.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := c.Start(ctx)
	testkit.NoError(t, err)
	conn, err := c.Connect(ctx, id)
	testkit.NoError(t, err)
	defer conn.Close()
	testkit.NoError(t, conn.KernelInfo(ctx))
	gw := strconv.Itoa(g.cmd.Process.Pid)
	execute(t, conn, `
import os
assert os.getuid() == `+strconv.Itoa(account.UID)+`, "the kernel is not the gateway's uid"
assert os.environ["JPY_PARENT_PID"] == "`+gw+`"
for f in ("environ", "mem", "maps"):
    try:
        open("/proc/`+gw+`/" + f, "rb").read(1)
        raise AssertionError("read the gateway's " + f)
    except PermissionError:
        pass
assert not any(s in v for v in os.environ.values() for s in ("`+shared+`", "`+hubToken+`")), "a secret in the kernel's environment"
assert "JUPYTERHUB_API_TOKEN" not in os.environ and "EG_AUTH_TOKEN" not in os.environ
assert "`+shared+`" not in open("/proc/`+gw+`/cmdline").read()
`)
	// What the kernel could not read is still there: only the file's owner
	// (root, now) and the kernel's uid's lack of access protect it.
	environ, err := os.ReadFile("/proc/" + gw + "/environ")
	testkit.NoError(t, err)
	testkit.True(t, bytes.Contains(environ, []byte("EG_AUTH_TOKEN="+shared)), "the starting environment changed")
}
