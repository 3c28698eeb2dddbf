// Package synthkernel is a real Jupyter kernel in Go whose execute runs a
// tiny command language, so that in throughput runs the gateway, not the
// kernel, is the bottleneck.
//
// One command per line:
//
//	emit N SIZE   publish N stdout stream messages of SIZE bytes, as fast as possible
//	sleep SECONDS wait (an interrupt ends it with KeyboardInterrupt)
//	echo TEXT     publish TEXT once on stdout
//
// Anything else ends the execution with an error naming the command.
package synthkernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/zmq"
)

// Kernel is one running synthetic kernel.
type Kernel struct {
	signer  *zmq.Signer
	session string
	ci      zmq.ConnectionInfo

	shell, control, stdin, iopub, hb zmq4.Socket
	// pub writes iopub messages to the subscribers' connections directly
	// (zmq.Peers), batched: a burst is written in 64 KiB writes, not one
	// write per message. zmq4's own PUB send is never used.
	pub   zmq.Peers
	pubMu sync.Mutex // iopub is written by shell and control
	seq   uint64     // msg_ids of emitted messages, under pubMu
	hdr   []byte     // scratch for emitted headers, under pubMu

	interrupt chan struct{}
	count     int
	cancel    context.CancelFunc
	done      chan struct{}
	stubborn  atomic.Bool
	hbMute    atomic.Bool
	hbEchoed  atomic.Uint64
}

// Stubborn makes the kernel answer shutdown_request and go on running, as a
// hung kernel does: only Stop (a kill) ends it.
func (k *Kernel) Stubborn() { k.stubborn.Store(true) }

// MuteHeartbeat stops (or, false, resumes) the heartbeat's echoes while
// the kernel goes on serving its other channels, as a kernel whose process
// is stopped or hung goes silent.
func (k *Kernel) MuteHeartbeat(mute bool) { k.hbMute.Store(mute) }

// Heartbeats is how many heartbeat pings the kernel has echoed.
func (k *Kernel) Heartbeats() uint64 { return k.hbEchoed.Load() }

// Run serves the kernel described by the connection file until a
// shutdown_request or ctx ends; SIGINT interrupts it, as it does a kernel
// process.
func Run(ctx context.Context, connFile string) error {
	ci, err := zmq.ReadConnectionFile(connFile)
	if err != nil {
		return err
	}
	k, err := Start(ctx, ci)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT)
	defer signal.Stop(sigs)
	for {
		select {
		case <-sigs:
			k.Interrupt()
		case <-k.Done():
			return nil
		}
	}
}

// Start serves a kernel in this process on ci's address and ports (a zero
// port is picked by the system; ConnectionInfo then has it) until a
// shutdown_request, Stop, or ctx ends.
func Start(ctx context.Context, ci zmq.ConnectionInfo) (*Kernel, error) {
	signer, err := zmq.NewSigner(ci.SignatureScheme, ci.Key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	k := &Kernel{signer: signer, session: uuid.NewString(), interrupt: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	// The hardened transport batches each message into one write.
	ep := func(port int) string { return fmt.Sprintf("%s://%s:%d", zmq.HardenedScheme, ci.IP, port) }
	k.shell, k.control, k.stdin = zmq4.NewRouter(ctx), zmq4.NewRouter(ctx), zmq4.NewRouter(ctx)
	k.iopub, k.hb = zmq4.NewPub(zmq.WithPeers(ctx, &k.pub)), zmq4.NewRouter(ctx)
	sockets := []struct {
		s    zmq4.Socket
		port *int
	}{{k.shell, &ci.ShellPort}, {k.control, &ci.ControlPort}, {k.stdin, &ci.StdinPort}, {k.iopub, &ci.IOPubPort}, {k.hb, &ci.HBPort}}
	closeAll := func() {
		for _, b := range sockets {
			b.s.Close()
		}
	}
	for _, b := range sockets {
		if err := b.s.Listen(ep(*b.port)); err != nil {
			cancel()
			closeAll()
			return nil, fmt.Errorf("synthkernel: %w", err)
		}
		if *b.port == 0 {
			*b.port = b.s.Addr().(*net.TCPAddr).Port
		}
	}
	k.ci = ci
	go k.echoHeartbeats()
	go k.serve(k.shell, cancel)
	go k.serve(k.control, cancel)
	k.status("starting", nil)
	go func() {
		<-ctx.Done()
		closeAll()
		close(k.done)
	}()
	return k, nil
}

// ConnectionInfo is where the kernel listens.
func (k *Kernel) ConnectionInfo() zmq.ConnectionInfo { return k.ci }

// Interrupt interrupts the execution in progress, as SIGINT does.
func (k *Kernel) Interrupt() { k.interruptNow() }

// Stop ends the kernel at once, as a killed process ends.
func (k *Kernel) Stop() { k.cancel() }

// Done is closed once the kernel has ended and closed its sockets.
func (k *Kernel) Done() <-chan struct{} { return k.done }

func (k *Kernel) interruptNow() {
	select {
	case k.interrupt <- struct{}{}:
	default:
	}
}

func (k *Kernel) echoHeartbeats() {
	for {
		m, err := k.hb.Recv()
		if err != nil {
			return
		}
		if k.hbMute.Load() {
			continue
		}
		if k.hb.SendMulti(m) == nil {
			k.hbEchoed.Add(1)
		}
	}
}

// serve handles one ROUTER channel's requests in order.
func (k *Kernel) serve(sock zmq4.Socket, shutdown func()) {
	for {
		zm, err := sock.Recv()
		if err != nil {
			return
		}
		req, err := k.signer.Parse(zm.Frames)
		if err != nil {
			continue
		}
		k.status("busy", req)
		var stop bool
		switch req.MsgType() {
		case "kernel_info_request":
			k.reply(sock, req, "kernel_info_reply", map[string]any{
				"status": "ok", "protocol_version": "5.3", "implementation": "kernelgate-synthetic",
				"implementation_version": "1", "banner": "kernelgate synthetic kernel",
				"language_info": map[string]any{"name": "synthetic", "version": "1", "mimetype": "text/plain", "file_extension": ".txt"},
			})
		case "execute_request":
			k.execute(sock, req)
		case "interrupt_request":
			k.interruptNow()
			k.reply(sock, req, "interrupt_reply", map[string]any{"status": "ok"})
		case "shutdown_request":
			var c struct {
				Restart bool `json:"restart"`
			}
			req.DecodeContent(&c)
			content := map[string]any{"status": "ok", "restart": c.Restart}
			k.reply(sock, req, "shutdown_reply", content)
			k.publish("shutdown_reply", req, content)
			stop = !k.stubborn.Load()
		case "comm_info_request":
			k.reply(sock, req, "comm_info_reply", map[string]any{"status": "ok", "comms": map[string]any{}})
		}
		k.status("idle", req)
		if stop {
			shutdown()
			return
		}
	}
}

func (k *Kernel) execute(sock zmq4.Socket, req *zmq.Message) {
	var c struct {
		Code string `json:"code"`
	}
	req.DecodeContent(&c)
	k.count++
	k.publish("execute_input", req, map[string]any{"code": c.Code, "execution_count": k.count})
	if err := k.run(req, c.Code); err != nil {
		ename := "Error"
		if errors.Is(err, errInterrupted) {
			ename = "KeyboardInterrupt"
		}
		content := map[string]any{"status": "error", "ename": ename, "evalue": err.Error(), "traceback": []string{err.Error()}, "execution_count": k.count}
		k.publish("error", req, content)
		k.reply(sock, req, "execute_reply", content)
		return
	}
	k.reply(sock, req, "execute_reply", map[string]any{"status": "ok", "execution_count": k.count, "user_expressions": map[string]any{}})
}

var errInterrupted = errors.New("interrupted")

func (k *Kernel) run(req *zmq.Message, code string) error {
	for _, line := range strings.Split(code, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "emit" && len(f) == 3:
			n, err1 := strconv.Atoi(f[1])
			size, err2 := strconv.Atoi(f[2])
			if err1 != nil || err2 != nil || n < 0 || size < 0 || size > 64<<20 {
				return fmt.Errorf("emit wants N SIZE, got %q", line)
			}
			if err := k.emit(req, n, strings.Repeat("x", max(size-1, 0))+"\n"); err != nil {
				return err
			}
		case f[0] == "sleep" && len(f) == 2:
			s, err := strconv.ParseFloat(f[1], 64)
			if err != nil || s < 0 {
				return fmt.Errorf("sleep wants SECONDS, got %q", line)
			}
			select {
			case <-time.After(time.Duration(s * float64(time.Second))):
			case <-k.interrupt:
				return errInterrupted
			}
		case f[0] == "echo":
			k.publish("stream", req, map[string]any{"name": "stdout", "text": strings.TrimSpace(strings.TrimPrefix(line, "echo")) + "\n"})
		default:
			return fmt.Errorf("unknown command %q", f[0])
		}
	}
	return nil
}

func (k *Kernel) message(msgType string, parent *zmq.Message, content any) *zmq.Message {
	var ph []byte
	if parent != nil {
		ph = parent.Header
	}
	m, err := zmq.NewMessage(msgType, k.session, "kernel", ph, content)
	if err != nil {
		panic(err) // content is always plain maps here
	}
	return m
}

func (k *Kernel) reply(sock zmq4.Socket, req *zmq.Message, msgType string, content any) {
	m := k.message(msgType, req, content)
	m.Identities = req.Identities
	sock.SendMulti(zmq4.NewMsgFrom(k.signer.Serialize(m)...))
}

func (k *Kernel) publish(msgType string, parent *zmq.Message, content any) {
	m := k.message(msgType, parent, content)
	m.Identities = [][]byte{[]byte("kernel." + msgType)}
	k.pubMu.Lock()
	defer k.pubMu.Unlock()
	k.pub.Send(k.signer.Serialize(m), true, 0) // no subscriber: dropped, as PUB does
}

// emit publishes n stdout stream messages of text as fast as it can: the
// content is encoded once, each header by hand (a counter for msg_id, the
// date once per 1024), and the messages are written in batches, flushed
// at the end. An interrupt ends it between two batches of 1024.
func (k *Kernel) emit(parent *zmq.Message, n int, text string) error {
	content, err := json.Marshal(map[string]string{"name": "stdout", "text": text})
	if err != nil {
		return err
	}
	k.pubMu.Lock()
	defer k.pubMu.Unlock()
	defer k.pub.Flush()
	m := &zmq.Message{Identities: [][]byte{[]byte("kernel.stream")}, ParentHeader: parent.Header, Metadata: []byte("{}"), Content: content}
	var date string
	for i := 0; i < n; i++ {
		if i%1024 == 0 {
			select {
			case <-k.interrupt:
				return errInterrupted
			default:
			}
			date = time.Now().UTC().Format(zmq.DateFormat)
		}
		k.seq++
		h := append(k.hdr[:0], `{"msg_id":"`...)
		h = append(h, k.session...)
		h = append(h, '_')
		h = strconv.AppendUint(h, k.seq, 10)
		h = append(h, `","msg_type":"stream","session":"`...)
		h = append(h, k.session...)
		h = append(h, `","username":"kernel","date":"`...)
		h = append(h, date...)
		h = append(h, `","version":"`+zmq.ProtocolVersion+`"}`...)
		k.hdr, m.Header = h, h
		k.pub.Send(k.signer.Serialize(m), false, 0)
	}
	return nil
}

func (k *Kernel) status(state string, parent *zmq.Message) {
	k.publish("status", parent, map[string]any{"execution_state": state})
}

// Spec returns a kernel.json body that runs this kernel with argv0
// ("kernelgate" binary path) and args before the connection file.
func Spec(argv ...string) string {
	q := make([]string, 0, len(argv)+2)
	for _, a := range append(argv, "-f", "{connection_file}") {
		q = append(q, strconv.Quote(a))
	}
	return `{"argv":[` + strings.Join(q, ",") + `],"display_name":"Synthetic (kernelgate bench)","language":"synthetic","interrupt_mode":"signal"}`
}

// ServeIfAsked lets a test binary double as the synthetic kernel: when it
// was started as `<binary> synth-kernel -f <connection file>` (the argv of
// Spec(binary, "synth-kernel")) it runs the kernel and exits; otherwise it
// returns. Call it first in TestMain.
func ServeIfAsked() {
	if len(os.Args) != 4 || os.Args[1] != "synth-kernel" {
		return
	}
	if err := Run(context.Background(), os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "synthetic kernel:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
