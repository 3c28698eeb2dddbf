package remote

import (
	"strings"

	"github.com/kernelgate/kernelgate/actors/proxy/ports"
	"github.com/kernelgate/kernelgate/kernelspecs"
)

// LaunchArgs are the values of EG's launcher placeholders in a
// kernelspec's argv. {connection_file} has none: the launcher writes that
// file where the kernel runs and fills it in itself.
type LaunchArgs struct {
	KernelID        string // {kernel_id}
	ResponseAddress string // {response_address}, the listener's ip:port
	PublicKey       string // {public_key}
	PortRange       string // {port_range}
	ResourceDir     string // {resource_dir}, the kernelspec's directory
}

// Argv returns argv with the placeholders filled in.
func (a LaunchArgs) Argv(argv []string) []string {
	r := strings.NewReplacer("{kernel_id}", a.KernelID, "{response_address}", a.ResponseAddress,
		"{public_key}", a.PublicKey, "{port_range}", a.PortRange, "{resource_dir}", a.ResourceDir)
	out := make([]string, len(argv))
	for i, s := range argv {
		out[i] = r.Replace(s)
	}
	return out
}

// launchPortRange is the port range a kernelspec's launcher gets: the
// kernelspec's process_proxy.config port_range, else def, checked against
// minSize.
func launchPortRange(spec kernelspecs.Spec, def string, minSize int) (string, error) {
	r := def
	if s, ok := spec.ProcessProxy.Config["port_range"].(string); ok && s != "" {
		r = s
	}
	if _, err := ports.ParseRange(r, minSize); err != nil {
		return "", err
	}
	return r, nil
}
