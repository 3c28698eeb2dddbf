package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kernelgate/kernelgate/actors/admission"
	"github.com/kernelgate/kernelgate/actors/proxy/local"
	"github.com/kernelgate/kernelgate/internal/identity"
	"github.com/kernelgate/kernelgate/internal/tlsfiles"
	"github.com/rs/zerolog"
)

// securityConfig is the settings of who may call the gateway and what its
// kernels may reach: the identity providers, TLS, and kernels that run as
// their user. (The shared token itself is serveConfig.AuthToken.)
type securityConfig struct {
	AuthTokenFile string

	HubAPIURL         string
	AuthCacheTTL      time.Duration
	OIDCIssuer        string
	OIDCAudience      string
	OIDCUsernameClaim string
	OIDCAdminGroups   []string
	AdminUsers        []string

	Impersonate          bool
	ImpersonateKernelIDs bool
	ProhibitedUIDs       []int
	ProhibitedGIDs       []int

	CertFile, KeyFile, ClientCA string

	// envSecrets are the credentials found in the process's environment
	// at start (which runServe then removes from it).
	envSecrets []string
}

func securitySettings(s *settings, c *securityConfig) {
	s.String(&c.AuthTokenFile, "auth-token-file", "", "file holding the shared token (instead of --auth-token, which every local user sees in ps, or EG_AUTH_TOKEN)", "KERNELGATE_AUTH_TOKEN_FILE")
	s.String(&c.HubAPIURL, "jupyterhub-api-url", "", "JupyterHub's REST API (http://hub:8081/hub/api): tokens are checked with GET {url}/user; empty = no JupyterHub", "KERNELGATE_JUPYTERHUB_API_URL", "JUPYTERHUB_API_URL")
	s.Seconds(&c.AuthCacheTTL, "auth-cache-ttl", identity.DefaultTTL, "seconds a token JupyterHub accepted is taken without asking again (a revoked token works this long); 0 = ask every time", "KERNELGATE_AUTH_CACHE_TTL")
	s.String(&c.OIDCIssuer, "oidc-issuer", "", "OpenID Connect issuer URL: bearer JWTs are verified with its published keys; empty = no OIDC", "KERNELGATE_OIDC_ISSUER")
	s.String(&c.OIDCAudience, "oidc-audience", "", "audience OIDC tokens must be issued to (the client id); required with --oidc-issuer", "KERNELGATE_OIDC_AUDIENCE")
	s.String(&c.OIDCUsernameClaim, "oidc-username-claim", identity.DefaultUsernameClaim, "claim of OIDC tokens holding the user name", "KERNELGATE_OIDC_USERNAME_CLAIM")
	s.List(&c.OIDCAdminGroups, "oidc-admin-groups", nil, "comma list of OIDC groups (claim groups) whose members are admins", "KERNELGATE_OIDC_ADMIN_GROUPS")
	s.List(&c.AdminUsers, "admin-users", nil, "comma list of users who see and act on every user's kernels (as JupyterHub admins do)", "KERNELGATE_ADMIN_USERS")
	s.Bool(&c.Impersonate, "impersonate", false, "run each local kernel as the Unix account of its user (uid, gid, groups, home); needs root and authentication; warm pools are then off for local kernels", "KERNELGATE_IMPERSONATE")
	s.Bool(&c.ImpersonateKernelIDs, "impersonate-kernel-ids", false, "under --impersonate, take a kernel's uid and gid from its KERNEL_UID and KERNEL_GID when sent: any caller then picks any uid outside the prohibited ones, so only when all callers are trusted", "KERNELGATE_IMPERSONATE_KERNEL_IDS")
	s.Ints(&c.ProhibitedUIDs, "prohibited-uids", []int{0}, "comma list of uids no kernel runs as", "EG_PROHIBITED_UIDS")
	s.Ints(&c.ProhibitedGIDs, "prohibited-gids", []int{0}, "comma list of gids no kernel runs with", "EG_PROHIBITED_GIDS")
	s.String(&c.CertFile, "certfile", "", "TLS certificate (PEM) of the API, REST and websockets; reloaded when it changes; empty = plain HTTP", "EG_CERTFILE", "KG_CERTFILE")
	s.String(&c.KeyFile, "keyfile", "", "private key (PEM) of --certfile; empty = in the certificate file", "EG_KEYFILE", "KG_KEYFILE")
	s.String(&c.ClientCA, "client-ca", "", "CA certificates (PEM) client certificates must chain to: mutual TLS", "EG_CLIENT_CA", "KG_CLIENT_CA")
}

// security is what the security settings make, checked before anything is
// served.
type security struct {
	// identity holds the identity providers; nil when there are none.
	identity identity.Chain
	// tls serves the API; nil for plain HTTP. peerTLS calls the other
	// replicas of the group.
	tls, peerTLS *tls.Config
	// impersonate is set when local kernels run as their user.
	impersonate *local.Impersonation
	// secrets are the gateway's credentials, kept out of kernels.
	secrets []string
}

// buildSecurity checks the security settings and builds what they ask
// for; it reads the token file into c.AuthToken. Close the identity chain
// when done.
func buildSecurity(c *serveConfig, log zerolog.Logger) (*security, error) {
	sc := &c.Security
	if sc.AuthTokenFile != "" {
		if c.AuthToken != "" {
			return nil, errors.New("both --auth-token (or EG_AUTH_TOKEN) and --auth-token-file are set: keep one")
		}
		token, err := readTokenFile(sc.AuthTokenFile, log)
		if err != nil {
			return nil, err
		}
		c.AuthToken = token
	}
	sec := &security{}
	for _, v := range append([]string{c.AuthToken, c.Replication.Token}, sc.envSecrets...) {
		if v != "" {
			sec.secrets = append(sec.secrets, v)
		}
	}
	for _, name := range admission.SecretEnvs {
		if v := os.Getenv(name); v != "" {
			sec.secrets = append(sec.secrets, v)
		}
	}

	var idc identity.Config
	if sc.HubAPIURL != "" {
		idc.Hub = &identity.HubConfig{APIURL: sc.HubAPIURL, TTL: sc.AuthCacheTTL}
	}
	switch {
	case sc.OIDCIssuer != "":
		idc.OIDC = &identity.OIDCConfig{Issuer: sc.OIDCIssuer, Audience: sc.OIDCAudience,
			UsernameClaim: sc.OIDCUsernameClaim, AdminGroups: sc.OIDCAdminGroups}
	case sc.OIDCAudience != "" || len(sc.OIDCAdminGroups) > 0:
		return nil, errors.New("--oidc-audience and --oidc-admin-groups need --oidc-issuer")
	}
	if sc.KeyFile != "" || sc.ClientCA != "" {
		if sc.CertFile == "" {
			return nil, errors.New("--keyfile and --client-ca need --certfile")
		}
	}
	if sc.Impersonate {
		if err := checkImpersonation(c, idc); err != nil {
			return nil, err
		}
		sec.impersonate = &local.Impersonation{ProhibitedUIDs: sc.ProhibitedUIDs, ProhibitedGIDs: sc.ProhibitedGIDs,
			KernelIDs: sc.ImpersonateKernelIDs}
		if len(c.Pool) > 0 {
			log.Warn().Msg("warm pools are off for local kernels under --impersonate: a pooled kernel would start before its user is known")
		}
	}
	if sc.CertFile != "" {
		files, err := tlsfiles.New(tlsfiles.Config{CertFile: sc.CertFile, KeyFile: sc.KeyFile, ClientCA: sc.ClientCA, Logger: log})
		if err != nil {
			return nil, err
		}
		sec.tls = files.TLSConfig()
		if sec.peerTLS, err = files.ClientConfig(); err != nil {
			return nil, err
		}
	}
	chain, err := identity.New(idc) // last: it may start goroutines
	if err != nil {
		return nil, err
	}
	if len(chain) > 0 {
		sec.identity = chain
	}
	return sec, nil
}

// checkImpersonation refuses what would make impersonation unsafe or
// unusable.
func checkImpersonation(c *serveConfig, idc identity.Config) error {
	if os.Geteuid() != 0 {
		return errors.New("--impersonate needs the gateway to run as root")
	}
	if c.AuthToken == "" && idc.Hub == nil && idc.OIDC == nil {
		return errors.New("--impersonate needs authentication (--auth-token-file, JupyterHub or OIDC): without it anyone could run code as any user")
	}
	// Kernels reach their files in <runtime dir>/<uid>: every directory
	// above must let other users pass.
	dir, err := filepath.Abs(c.RuntimeDir)
	if err != nil {
		return err
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err == nil && st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("--impersonate: kernels cannot reach the runtime directory %s: %s is not passable by other users (mode %v); choose another --runtime-dir", dir, d, st.Mode().Perm())
		}
		if d == "/" {
			return nil
		}
	}
}

// readTokenFile reads the shared token from a file: its first line, without
// the spaces around it.
func readTokenFile(name string, log zerolog.Logger) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("auth token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("auth token file: %w", err)
	}
	if st.Mode().Perm()&0o004 != 0 {
		log.Warn().Str("file", name).Msg("the auth token file is readable by every local user")
	}
	b, err := io.ReadAll(io.LimitReader(f, identity.MaxTokenLen+1))
	if err != nil {
		return "", fmt.Errorf("auth token file: %w", err)
	}
	token, _, _ := strings.Cut(string(b), "\n")
	if token = strings.TrimSpace(token); token == "" {
		return "", fmt.Errorf("auth token file %s holds no token", name)
	}
	return token, nil
}

// takeSecretEnvs returns the values of the variables that hold credentials
// (admission.SecretEnvs) and removes them from the process's environment,
// so that no process the gateway starts (kernels, ssh, helpers) inherits
// them from it. What /proc/<pid>/environ shows is not changed by this: it
// is the environment the process was started with. hideProcess protects
// that.
func takeSecretEnvs() []string {
	var values []string
	for _, name := range admission.SecretEnvs {
		if v, ok := os.LookupEnv(name); ok {
			values = append(values, v)
			os.Unsetenv(name)
		}
	}
	return values
}

// hideProcess makes the gateway's process non-dumpable: its /proc/<pid>
// files (environ, mem, maps, fd) become root's, and processes of the same
// uid — kernels, when they are not impersonated — can neither read them nor
// attach a debugger to it. Without this, a kernel of the gateway's own user
// reads the gateway's starting environment (EG_AUTH_TOKEN, the Hub's
// JUPYTERHUB_API_TOKEN) from /proc/<pid>/environ, however the gateway
// changed its environment since. (/proc/<pid>/cmdline stays readable by
// every user: never give a secret as a flag.) The price is that only root
// can debug the gateway, and it dumps no core.
func hideProcess() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", errno)
	}
	return nil
}

// identityOrNil returns chain as an Authenticator, or nil when it is empty:
// a nil Chain in an interface would not be nil.
func identityOrNil(chain identity.Chain) identity.Authenticator {
	if len(chain) == 0 {
		return nil
	}
	return chain
}
