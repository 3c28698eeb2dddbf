// Package farm hosts many synthetic kernels (bench/synthkernel) in one
// process, each on a loopback address of its own, and starts one when a
// gateway asks: the kernel farm of `kernelgate bench-kernel --farm`, for
// scale runs that need more kernels than a machine has room for processes.
//
// It plays both a resource manager and the launchers it runs: a launch
// request (actors/proxy/farm's LaunchRequest, POSTed to /launch) starts a
// kernel on the next free address (127.64.0.1, 127.64.0.2, …: five ports
// a kernel would not fit one address's port range at 10,000 kernels), then
// reports its connection info to the gateway's response address exactly as
// `kernelgate launch` does (EG's launcher protocol, RSA-wrapped AES) and
// serves the kernel's comm port: signal 0 is a liveness check, SIGINT
// interrupts the kernel, any other signal or a shutdown request stops it,
// and the comm port closes once the kernel has ended.
package farm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	kgfarm "github.com/kernelgate/kernelgate/actors/proxy/farm"
	"github.com/kernelgate/kernelgate/actors/proxy/remote"
	"github.com/kernelgate/kernelgate/bench/synthkernel"
	"github.com/kernelgate/kernelgate/zmq"
)

// Options configure a farm.
type Options struct {
	// Addr is where launch requests are taken, host:port (a loopback
	// address; port 0 picks one).
	Addr string
	// FirstIP is the first kernel address; kernels get the addresses
	// that follow it (host parts 0 and 255 are skipped). Default
	// 127.64.0.1.
	FirstIP net.IP
	// MaxKernels bounds the kernels alive at once; 0 means 100,000.
	MaxKernels int
	// ShutdownGrace is how long a kernel may take to exit after a comm
	// shutdown request before it is stopped (the launcher's grace).
	// Default 1 s.
	ShutdownGrace time.Duration
	// Log receives one line per failure; nil discards them.
	Log io.Writer
}

// Farm is a running kernel farm.
type Farm struct {
	opts Options
	ln   net.Listener
	srv  *http.Server
	ctx  context.Context
	stop context.CancelFunc

	mu      sync.Mutex
	kernels map[string]*kernel // by kernel id
	inUse   map[uint32]bool    // kernel addresses taken
	next    uint32             // the next address to try
	first   uint32
	limit   uint32 // addresses from first on
	wg      sync.WaitGroup
	started uint64
	failed  uint64
}

type kernel struct {
	id   string
	ip   uint32
	k    *synthkernel.Kernel
	comm net.Listener
}

// Start listens for launch requests at o.Addr.
func Start(o Options) (*Farm, error) {
	if o.FirstIP == nil {
		o.FirstIP = net.IPv4(127, 64, 0, 1)
	}
	first := o.FirstIP.To4()
	if first == nil || first[0] != 127 {
		return nil, fmt.Errorf("farm: first kernel address %s is not a loopback IPv4 address", o.FirstIP)
	}
	if o.MaxKernels <= 0 {
		o.MaxKernels = 100_000
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("farm: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	base := binary.BigEndian.Uint32(first)
	f := &Farm{opts: o, ln: ln, ctx: ctx, stop: stop, kernels: make(map[string]*kernel), inUse: make(map[uint32]bool),
		first: base, next: base, limit: 0x7fffffff - base} // up to 127.255.255.254
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+kgfarm.LaunchPath, f.serveLaunch)
	mux.HandleFunc("GET /status", f.serveStatus)
	f.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.srv.Serve(ln)
	}()
	return f, nil
}

// Addr is where the farm takes launch requests.
func (f *Farm) Addr() string { return f.ln.Addr().String() }

// Live is the number of kernels alive.
func (f *Farm) Live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.kernels)
}

// Close stops taking launches, stops every kernel and waits for them.
func (f *Farm) Close() error {
	err := f.srv.Close()
	f.stop()
	f.mu.Lock()
	ks := make([]*kernel, 0, len(f.kernels))
	for _, k := range f.kernels {
		ks = append(ks, k)
	}
	f.mu.Unlock()
	for _, k := range ks {
		k.k.Stop()
	}
	f.wg.Wait()
	return err
}

// Status is what GET /status answers.
type Status struct {
	Live    int    `json:"live"`
	Started uint64 `json:"started"`
	Failed  uint64 `json:"failed"`
}

func (f *Farm) serveStatus(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	st := Status{Live: len(f.kernels), Started: f.started, Failed: f.failed}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// serveLaunch starts a kernel and answers once its launcher callback has
// been delivered (or has failed).
func (f *Farm) serveLaunch(w http.ResponseWriter, r *http.Request) {
	var req kgfarm.LaunchRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil || req.KernelID == "" || req.PublicKey == "" || req.ResponseAddress == "" {
		http.Error(w, "want a JSON launch request with kernel_id, response_address and public_key", http.StatusBadRequest)
		return
	}
	if err := f.launch(r.Context(), req); err != nil {
		f.mu.Lock()
		f.failed++
		f.mu.Unlock()
		fmt.Fprintf(f.opts.Log, "%s farm: kernel %s: %v\n", time.Now().UTC().Format(time.RFC3339), req.KernelID, err)
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// launch runs one kernel on a fresh address, serves its comm port and
// calls the gateway back with its connection info.
func (f *Farm) launch(ctx context.Context, req kgfarm.LaunchRequest) error {
	ip, err := f.takeIP(req.KernelID)
	if err != nil {
		return err
	}
	addr := ipString(ip)
	ci := zmq.ConnectionInfo{IP: addr, Transport: "tcp", SignatureScheme: "hmac-sha256", Key: uuid.NewString(), KernelName: "synthetic"}
	sk, err := synthkernel.Start(f.ctx, ci)
	if err != nil {
		f.releaseIP(req.KernelID, ip)
		return err
	}
	comm, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		sk.Stop()
		<-sk.Done()
		f.releaseIP(req.KernelID, ip)
		return fmt.Errorf("comm port: %w", err)
	}
	k := &kernel{id: req.KernelID, ip: ip, k: sk, comm: comm}
	f.mu.Lock()
	f.kernels[req.KernelID] = k
	f.started++
	f.mu.Unlock()
	f.wg.Add(1)
	go f.serveComm(k)
	p := remote.Payload{ConnectionInfo: sk.ConnectionInfo(), KernelID: req.KernelID,
		PID: remote.Int(os.Getpid()), PGID: remote.Int(os.Getpid()), CommPort: remote.Int(comm.Addr().(*net.TCPAddr).Port)}
	if err := remote.CallBack(ctx, req.ResponseAddress, req.PublicKey, p); err != nil {
		sk.Stop()
		return err
	}
	return nil
}

// serveComm answers the gateway's comm-port requests until the kernel
// ends, then closes the port (the next poll is refused: the kernel is
// gone) and frees the kernel's address.
func (f *Farm) serveComm(k *kernel) {
	defer f.wg.Done()
	go func() {
		<-k.k.Done()
		k.comm.Close()
	}()
	var grace *time.Timer
	remote.ServeComm(k.comm, remote.CommHandler{
		Signal: func(sig syscall.Signal) {
			if sig == syscall.SIGINT {
				k.k.Interrupt()
			} else {
				k.k.Stop()
			}
		},
		Shutdown: func() { grace = time.AfterFunc(f.opts.ShutdownGrace, k.k.Stop) },
	})
	if grace != nil {
		grace.Stop()
	}
	<-k.k.Done()
	f.releaseIP(k.id, k.ip)
}

var errFull = errors.New("farm: no free kernel address (MaxKernels alive)")

// takeIP reserves the next free kernel address for kernel id.
func (f *Farm) takeIP(id string) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, dup := f.kernels[id]; dup {
		return 0, fmt.Errorf("farm: kernel %s is already running", id)
	}
	if len(f.inUse) >= f.opts.MaxKernels {
		return 0, errFull
	}
	for range f.limit {
		ip := f.next
		f.next++
		if f.next-f.first >= f.limit {
			f.next = f.first
		}
		if b := ip & 0xff; b == 0 || b == 255 || f.inUse[ip] {
			continue
		}
		f.inUse[ip] = true
		return ip, nil
	}
	return 0, errFull
}

func (f *Farm) releaseIP(id string, ip uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.inUse, ip)
	if k, ok := f.kernels[id]; ok && k.ip == ip {
		delete(f.kernels, id)
	}
}

func ipString(ip uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], ip)
	return net.IP(b[:]).String()
}
