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
