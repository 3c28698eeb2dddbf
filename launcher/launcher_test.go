package launcher

import (
	"io"
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

func TestParseAcceptsBothFlagStyles(t *testing.T) {
	for _, args := range [][]string{
		{"--kernel-id", "k", "--response-address", "10.0.0.1:8877", "--public-key", "PK", "--port-range", "40000..41000", "--", "python", "-f", "{connection_file}"},
		{"--RemoteProcessProxy.kernel-id", "k", "--RemoteProcessProxy.response-address", "10.0.0.1:8877",
			"--RemoteProcessProxy.public-key", "PK", "--RemoteProcessProxy.port-range", "40000..41000", "--", "python", "-f", "{connection_file}"},
	} {
		o, err := parse(args, noEnv, io.Discard)
		testkit.NoError(t, err)
		testkit.Equal(t, o.KernelID, "k")
		testkit.Equal(t, o.ResponseAddress, "10.0.0.1:8877")
		testkit.Equal(t, o.PublicKey, "PK")
		testkit.Equal(t, o.PortRange, ports.Range{Low: 40000, High: 41000})
		testkit.Equal(t, o.Argv, []string{"python", "-f", "{connection_file}"})
	}
}

func TestParseRejects(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--public-key", "PK", "--", "k"}, "required"},
		{[]string{"--kernel-id", "k", "--public-key", "PK"}, "no kernel command"},
		{[]string{"--kernel-id", "k", "--public-key", "PK", "--port-range", "5..6", "--", "k"}, "port range"},
	} {
		_, err := parse(tt.args, noEnv, io.Discard)
		testkit.True(t, err != nil && strings.Contains(err.Error(), tt.want), "%v: error %v, want %q", tt.args, err, tt.want)
	}
}

func noEnv(string) string { return "" }

// As a pod's entrypoint the launcher takes EG's environment contract:
// flags still win.
func TestParseTakesAPodsEnvironment(t *testing.T) {
	env := map[string]string{"KERNEL_ID": "k", "RESPONSE_ADDRESS": "10.0.0.1:8877", "PUBLIC_KEY": "PK",
		"PORT_RANGE": "40000..41000", "POD_IP": "10.1.2.3", "KERNEL_LANGUAGE": "Python"}
	getenv := func(k string) string { return env[k] }
	o, err := parse(nil, getenv, io.Discard)
	testkit.NoError(t, err)
	testkit.Equal(t, o.KernelID, "k")
	testkit.Equal(t, o.ResponseAddress, "10.0.0.1:8877")
	testkit.Equal(t, o.PublicKey, "PK")
	testkit.Equal(t, o.PortRange, ports.Range{Low: 40000, High: 41000})
	testkit.Equal(t, o.IP, "10.1.2.3")
	testkit.Equal(t, o.Argv, []string{"python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"})

	o, err = parse([]string{"--kernel-id", "other", "--ip", "127.0.0.1", "--", "kernel", "{connection_file}"}, getenv, io.Discard)
	testkit.NoError(t, err)
	testkit.Equal(t, o.KernelID, "other")
	testkit.Equal(t, o.IP, "127.0.0.1")
	testkit.Equal(t, o.Argv, []string{"kernel", "{connection_file}"})

	env["KERNEL_LANGUAGE"] = "scala"
	_, err = parse(nil, getenv, io.Discard)
	testkit.True(t, err != nil && strings.Contains(err.Error(), "scala"), "error %v", err)
}

func TestSSHServerIP(t *testing.T) {
	t.Setenv("SSH_CONNECTION", "127.0.0.1 50000 127.0.0.3 22")
	testkit.Equal(t, sshServerIP(), "127.0.0.3")
	t.Setenv("SSH_CONNECTION", "")
	testkit.Equal(t, sshServerIP(), "0.0.0.0")
}
