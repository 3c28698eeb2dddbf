package admission

import (
	"os"
	"testing"

	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/kernelspecs"
)

func TestKernelEnvPrecedence(t *testing.T) {
	t.Setenv("SECRET_OF_GATEWAY", "x")
	t.Setenv("EG_AUTH_TOKEN", "tok")
	cfg := EnvConfig{BaseEnvs: []string{"HOME", "EG_AUTH_TOKEN"}, InheritedEnvs: []string{"SHARED"}}
	t.Setenv("SHARED", "inherited")
	spec := kernelspecs.Spec{Language: "Python", Env: map[string]string{
		"FROM_SPEC": "spec-${HOME}-${UNKNOWN}-$HOME", "KERNEL_OVERRIDE": "spec", "SHARED": "spec"}}
	client, err := ClientEnv(map[string]any{"KERNEL_OVERRIDE": "client", "PATH": "/evil", "KERNEL_GATEWAY": "0"}, nil)
	testkit.NoError(t, err)
	env := KernelEnv(cfg, spec, client, "id-1", "alice")
	testkit.Equal(t, env["FROM_SPEC"], "spec-"+os.Getenv("HOME")+"-${UNKNOWN}-$HOME")
	testkit.Equal(t, env["KERNEL_OVERRIDE"], "client")
	testkit.Equal(t, env["SHARED"], "spec")
	testkit.Equal(t, env["KERNEL_GATEWAY"], "1")
	testkit.Equal(t, env["KERNEL_ID"], "id-1")
	testkit.Equal(t, env["KERNEL_USERNAME"], "alice")
	testkit.Equal(t, env["KERNEL_LANGUAGE"], "python")
	_, hasPath := env["PATH"]
	testkit.Equal(t, hasPath, false)
	_, hasSecret := env["SECRET_OF_GATEWAY"]
	testkit.Equal(t, hasSecret, false)
	_, hasToken := env["EG_AUTH_TOKEN"]
	testkit.Equal(t, hasToken, false)
}

// The gateway's credentials never reach a kernel: not by the names they
// have in the gateway's environment (EG's tokens, the API token JupyterHub
// gives a service it starts), nor under another name an operator, a
// kernelspec or a client used.
func TestKernelEnvDropsSecrets(t *testing.T) {
	const shared, hub = "shared-token-0123456789", "hub-api-token-abcdef"
	t.Setenv("JUPYTERHUB_API_TOKEN", hub)
	t.Setenv("JPY_API_TOKEN", hub)
	t.Setenv("KG_AUTH_TOKEN", shared)
	t.Setenv("MY_COPY", "prefix-"+shared)
	t.Setenv("SHORT", "ab")
	cfg := EnvConfig{InheritedEnvs: []string{"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "KG_AUTH_TOKEN", "MY_COPY", "SHORT"},
		Secrets: []string{shared, hub, "ab"}}
	spec := kernelspecs.Spec{Env: map[string]string{"FROM_SPEC": "${JUPYTERHUB_API_TOKEN}", "INNOCENT": "table"}}
	client, err := ClientEnv(map[string]any{"KERNEL_TOKEN": shared, "KERNEL_FINE": "fine"}, nil)
	testkit.NoError(t, err)
	env := KernelEnv(cfg, spec, client, "id-1", "alice")
	for _, name := range []string{"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN", "KG_AUTH_TOKEN", "MY_COPY", "SHORT", "FROM_SPEC", "KERNEL_TOKEN"} {
		_, ok := env[name]
		testkit.True(t, !ok, "kernel got %s", name)
	}
	// A short secret is matched as a whole value only.
	testkit.Equal(t, env["INNOCENT"], "table")
	testkit.Equal(t, env["KERNEL_FINE"], "fine")
}
