package zmq

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
)

func TestKernelInfoRoundTrip(t *testing.T) {
	k := startKernel(t)
	req := k.request(Shell, "kernel_info_request", nil, nil)
	rc := k.next(req, 10*time.Second, isType(Shell, "kernel_info_reply"))
	c := content(t, rc.Msg)
	testkit.True(t, strings.HasPrefix(c["protocol_version"].(string), "5."), "protocol_version %v", c["protocol_version"])
	testkit.Equal(t, c["implementation"], any("ipython"))
}

func TestExecuteStreamsOutput(t *testing.T) {
	k := startKernel(t)
	req := k.execute(`print("hi")`)
	got := k.collect(req, 10*time.Second)
	testkit.Equal(t, content(t, find(t, got, IOPub, "stream"))["text"], any("hi\n"))
	testkit.Equal(t, content(t, find(t, got, Shell, "execute_reply"))["status"], any("ok"))
}

func TestInputRequestReachesStdin(t *testing.T) {
	k := startKernel(t)
	req := k.execute(`print("got", input("name? "))`)
	ask := k.next(req, 10*time.Second, isType(Stdin, "input_request"))
	testkit.Equal(t, content(t, ask.Msg)["prompt"], any("name? "))
	k.request(Stdin, "input_reply", ask.Msg.Header, map[string]any{"value": "alice"})
	stream := k.next(req, 10*time.Second, isType(IOPub, "stream"))
	testkit.Equal(t, content(t, stream.Msg)["text"], any("got alice\n"))
}

func TestInterruptRequestEndsRunningCell(t *testing.T) {
	k := startKernel(t)
	req := k.execute("import time; print('sleeping', flush=True); time.sleep(60)")
	// The kernel catches SIGINT only once user code runs: wait for it to.
	k.next(req, 10*time.Second, isType(IOPub, "stream"))
	k.request(Control, "interrupt_request", nil, nil)
	// Under a loaded machine the first interrupt can come before the kernel
	// takes it: ask again every 2 s, as a user pressing stop would.
	again := time.NewTicker(2 * time.Second)
	defer again.Stop()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case rc := <-k.c.Messages():
			testkit.NoError(t, rc.Err)
			if p, err := rc.Msg.Parent(); err != nil || p.MsgID != req.Head().MsgID || !isType(Shell, "execute_reply")(rc) {
				continue
			}
			c := content(t, rc.Msg)
			testkit.Equal(t, c["status"], any("error"))
			testkit.Equal(t, c["ename"], any("KeyboardInterrupt"))
			return
		case <-again.C:
			k.request(Control, "interrupt_request", nil, nil)
		case <-deadline:
			t.Fatal("the cell was not interrupted within 30s")
		}
	}
}

func TestShutdownRequestEndsProcess(t *testing.T) {
	k := startKernel(t)
	req := k.request(Control, "shutdown_request", nil, map[string]any{"restart": false})
	reply := k.next(req, 10*time.Second, isType(Control, "shutdown_reply"))
	testkit.Equal(t, content(t, reply.Msg)["restart"], any(false))
	testkit.Recv(t, k.proc.Done, 20*time.Second)
}

func TestHeartbeat(t *testing.T) {
	k := startKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 {
		testkit.NoError(t, k.c.Heartbeat(ctx))
	}
	// A stopped kernel stops echoing.
	testkit.Stop(t, k.proc.Cmd.Process.Pid)
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	testkit.ErrorIs(t, k.c.Heartbeat(short), context.DeadlineExceeded)
}

func TestKernelDeathSurfacesAsSocketError(t *testing.T) {
	k := startKernel(t)
	testkit.NoError(t, syscall.Kill(-k.proc.Cmd.Process.Pid, syscall.SIGKILL))
	deadline := time.After(10 * time.Second)
	for {
		select {
		case rc := <-k.c.Messages():
			if rc.Err != nil {
				testkit.ErrorIs(t, rc.Err, ErrSocket)
				return
			}
		case <-deadline:
			t.Fatal("no socket error after the kernel died")
		}
	}
}

func TestClientOpenCloseLeavesNoGoroutines(t *testing.T) {
	k := startKernel(t)
	defer leaktest.Check(t)()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 100 {
		c, err := Connect(ctx, k.ci, Options{})
		testkit.NoError(t, err)
		if i%10 == 0 { // now and then with traffic in flight
			m, err := NewMessage("kernel_info_request", c.Identity(), "test", nil, nil)
			testkit.NoError(t, err)
			testkit.NoError(t, c.Send(Shell, m))
		}
		testkit.NoError(t, c.Close())
	}
}
