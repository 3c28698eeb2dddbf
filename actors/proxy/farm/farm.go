// Package farm is the process proxy of a kernel farm: a service that hosts
// many kernels in one process (`kernelgate bench-kernel --farm`) and starts
// one when asked, as a resource manager does. The launch is an HTTP request
// to the farm carrying Enterprise Gateway's launcher arguments (kernel id,
// response address, public key, port range); the kernel's connection info
// comes back over the launcher protocol to the gateway's response listener,
// and the kernel is then signalled, polled and stopped through its comm
// port like any remote kernel (actors/proxy/remote).
//
// It exists so that one machine can measure a gateway with thousands of
// live kernels along the path SSH and Kubernetes kernels take: the gateway
// side (the response listener, its own ZMQ sockets to every kernel,
// heartbeats, the kernel actor) is exactly production's; only the kernels
// are synthetic and share a process.
//
// A kernelspec selects it with
//
//	"metadata": {"process_proxy": {"class_name": "farm", "config": {"farm_address": "127.0.0.1:9700"}}}
//
// farm_address may list several farms (comma-separated): launches go to
// each in turn, and to the next when one fails (a process holds only so
// many kernels' sockets).
package farm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/kernelspecs"
	"github.com/rs/zerolog"
)

// ClassNames select this provisioner.
var ClassNames = []string{"farm"}

// LaunchPath is where a farm takes launch requests (POST, JSON).
const LaunchPath = "/launch"

// LaunchRequest is the body of a launch: the values of EG's launcher
// placeholders.
type LaunchRequest struct {
	KernelID        string `json:"kernel_id"`
	ResponseAddress string `json:"response_address"`
	PublicKey       string `json:"public_key"`
	PortRange       string `json:"port_range"`
}

// Config configures the provisioner.
type Config struct {
	// Listener receives the farm's callbacks (shared with the other remote
	// provisioners).
	Listener *remote.Listener
	// CommTimeout bounds each comm-port request (EG_SOCKET_TIMEOUT).
	CommTimeout time.Duration
	// PortRange is `{port_range}` unless the kernelspec sets port_range.
	PortRange        string
	MinPortRangeSize int
	Logger           zerolog.Logger
}

// Provisioner launches kernels on farms.
type Provisioner struct {
	cfg    Config
	client *http.Client
	turn   atomic.Uint64
}

var _ proxy.Provisioner = (*Provisioner)(nil)

// New returns a provisioner; nothing is contacted before a launch.
func New(c Config) (*Provisioner, error) {
	if c.Listener == nil {
		return nil, errors.New("farm provisioner: no response listener")
	}
	// Launch requests are short and many at once (a burst of starts):
	// keep enough connections to the farm open.
	tr := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	return &Provisioner{cfg: c, client: &http.Client{Transport: tr}}, nil
}

// Close releases the idle connections to farms.
func (p *Provisioner) Close() { p.client.CloseIdleConnections() }

// processInfo finds a farm kernel again (for the record).
type processInfo struct {
	Farm     string `json:"farm"`
	IP       string `json:"ip"`
	CommPort int    `json:"comm_port"`
}

// Launch asks the kernelspec's farm for a kernel and waits for its
// connection info.
func (p *Provisioner) Launch(ctx context.Context, req proxy.LaunchRequest) (proxy.Kernel, error) {
	list, _ := req.Spec.ProcessProxy.Config["farm_address"].(string)
	farms := kernelspecs.SplitList(list)
	if len(farms) == 0 {
		return nil, fmt.Errorf("%w: kernelspec %s names no farm (metadata.process_proxy.config.farm_address)", proxy.ErrLaunch, req.Spec.Name)
	}
	w, args, err := p.cfg.Listener.Prepare(req, p.cfg.PortRange, p.cfg.MinPortRangeSize)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	body, _ := json.Marshal(LaunchRequest{KernelID: args.KernelID, ResponseAddress: args.ResponseAddress,
		PublicKey: args.PublicKey, PortRange: args.PortRange}) // plain strings: cannot fail
	first := int(p.turn.Add(1) % uint64(len(farms)))
	var addr string
	var errs []error
	for i := range farms {
		addr = farms[(first+i)%len(farms)]
		err := p.post(ctx, addr, body)
		if err == nil {
			break
		}
		errs = append(errs, fmt.Errorf("farm %s: %w", addr, err))
		if ctx.Err() != nil || i == len(farms)-1 {
			return nil, fmt.Errorf("%w: %w", proxy.ErrLaunch, errors.Join(errs...))
		}
	}
	payload, err := w.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: waited too long for the connection info of kernel %s from farm %s: %w", proxy.ErrLaunch, req.KernelID, addr, err)
	}
	// The farm binds each kernel to an address of its own and reports it;
	// one that reports a wildcard is reached where the farm is.
	ip := payload.IP
	if ip == "" || net.ParseIP(ip).IsUnspecified() {
		ip, _, _ = net.SplitHostPort(addr)
	}
	info, _ := json.Marshal(processInfo{Farm: addr, IP: ip, CommPort: int(payload.CommPort)})
	k := remote.NewKernel(payload, ip, remote.KernelOptions{CommTimeout: p.cfg.CommTimeout, ProcessInfo: info})
	req.Logger.Debug().Str("farm", addr).Str("ip", ip).Int("comm_port", int(payload.CommPort)).Msg("farm kernel reported its connection info")
	return k, nil
}

// post sends one launch request; the farm answers once it has called back.
func (p *Provisioner) post(ctx context.Context, addr string, body []byte) error {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+LaunchPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
