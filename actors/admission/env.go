// Package admission holds the rules a kernel start must pass before the
// gateway spends anything on it: which of a client's environment variables
// a kernel may get and what their values may hold, the environment a kernel
// is launched with, who may use which kernelspec, and the kernel limits.
// They are pure functions; the gateway actor applies them with its counts.
package admission

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kernelgate/kernelgate/kernelspecs"
)

// MaxEnvValue is EG's limit on one env value.
const MaxEnvValue = 4096

var uuid4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// ClientEnv keeps the variables a client may set: KERNEL_* and those in
// allowed ("*" allows all). Anything else is dropped silently, as EG does;
// a kept value that is not a string, is too long or holds characters a
// shell would interpret is refused.
func ClientEnv(raw map[string]any, allowed []string) (map[string]string, error) {
	out := make(map[string]string, len(raw))
	all := slices.Contains(allowed, "*")
	for k, v := range raw {
		if !strings.HasPrefix(k, "KERNEL_") && !all && !slices.Contains(allowed, k) {
			continue
		}
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("%w: environment variable name %q is not valid", ErrBadRequest, k)
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%w: environment variable '%s' value must be a string", ErrBadRequest, k)
		}
		if len(s) > MaxEnvValue {
			return nil, fmt.Errorf("%w: environment variable '%s' value exceeds maximum length of %d", ErrBadRequest, k, MaxEnvValue)
		}
		if strings.ContainsAny(s, "$`\r\n\x00") {
			return nil, fmt.Errorf("%w: environment variable '%s' value contains prohibited characters", ErrBadRequest, k)
		}
		out[k] = s
	}
	if id, ok := out["KERNEL_ID"]; ok && !uuid4.MatchString(id) {
		return nil, fmt.Errorf("%w: KERNEL_ID %q is not a lower-case UUID version 4", ErrBadRequest, id)
	}
	return out, nil
}

// LaunchTimeout is a KERNEL_LAUNCH_TIMEOUT value (seconds) when it is
// usable, else def.
func LaunchTimeout(value string, def time.Duration) time.Duration {
	if f, err := strconv.ParseFloat(value, 64); err == nil && f > 0 && f < 24*3600 {
		return time.Duration(f * float64(time.Second))
	}
	return def
}

// EnvConfig is what KernelEnv takes from the gateway's settings.
type EnvConfig struct {
	// BaseEnvs are variables of the gateway's environment every local
	// kernel needs to run at all (PATH, HOME, locale, …).
	BaseEnvs []string
	// InheritedEnvs are variables of the gateway's environment passed to
	// every kernel (EG_INHERITED_ENVS).
	InheritedEnvs []string
	// Secrets are the gateway's credentials (its shared token, its own
	// JupyterHub API token): a variable holding one never reaches a kernel,
	// whatever its name and whoever set it — an inherited variable, a
	// kernelspec's env or a client.
	Secrets []string
}

// SecretEnvs name the variables that hold the gateway's credentials: EG's
// tokens, the API token JupyterHub gives a service it starts (its old name
// too), and the secret of a replica group. Kernels never get them.
var SecretEnvs = []string{"EG_AUTH_TOKEN", "KG_AUTH_TOKEN", "JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "KERNELGATE_REPLICA_TOKEN"}

// minSecretMatch is the shortest secret looked for inside values: a shorter
// one would match innocent text, so it is only matched as a whole value.
const minSecretMatch = 8

// KernelEnv builds a kernel's environment, lowest precedence first: the
// gateway's base and inherited variables; the kernelspec's env, with ${VAR}
// expanded against those (unknown references stay as written); the client's
// variables; then the ones the gateway owns. Unlike EG, a request without
// env does not hand the kernel the gateway's whole environment (its token
// included): only BaseEnvs and InheritedEnvs cross over, and never a
// variable named in SecretEnvs or holding one of cfg.Secrets.
func KernelEnv(cfg EnvConfig, spec kernelspecs.Spec, client map[string]string, id, user string) map[string]string {
	env := make(map[string]string)
	for _, names := range [][]string{cfg.BaseEnvs, cfg.InheritedEnvs} {
		for _, n := range names {
			if v, ok := os.LookupEnv(n); ok {
				env[n] = v
			}
		}
	}
	base := func(name string) string {
		if v, ok := env[name]; ok {
			return v
		}
		return "${" + name + "}"
	}
	expanded := make(map[string]string, len(spec.Env))
	for k, v := range spec.Env {
		expanded[k] = expandBraced(v, base)
	}
	for k, v := range expanded {
		env[k] = v
	}
	for k, v := range client {
		env[k] = v
	}
	env["KERNEL_ID"] = id
	env["KERNEL_USERNAME"] = user
	env["KERNEL_GATEWAY"] = "1"
	if _, ok := env["KERNEL_LANGUAGE"]; !ok && spec.Language != "" {
		env["KERNEL_LANGUAGE"] = strings.ToLower(spec.Language)
	}
	for _, name := range SecretEnvs {
		delete(env, name)
	}
	for k, v := range env {
		if holdsSecret(v, cfg.Secrets) {
			delete(env, k)
		}
	}
	return env
}

// holdsSecret reports whether v is or contains one of secrets.
func holdsSecret(v string, secrets []string) bool {
	for _, s := range secrets {
		if s != "" && (v == s || len(s) >= minSecretMatch && strings.Contains(v, s)) {
			return true
		}
	}
	return false
}

// expandBraced replaces ${NAME} references only (like Python's
// string.Template.safe_substitute for the braced form); $NAME and
// ${NAME:-default} are left for a shell in the kernel's argv.
func expandBraced(s string, lookup func(string) string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		name := s[i+2 : i+j]
		b.WriteString(s[:i])
		if isIdent(name) {
			b.WriteString(lookup(name))
		} else {
			b.WriteString(s[i : i+j+1])
		}
		s = s[i+j+1:]
	}
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
