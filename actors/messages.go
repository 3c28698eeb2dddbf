package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/zmq"
)

// Requests from the Gateway facade. Each is answered to its sender.

// startKernel asks the gateway actor for a kernel; answered with *started.
// admitted says the group's admission has counted it against the limits
// already (a replica group).
type startKernel struct {
	req      StartRequest
	admitted bool
}

// started answers startKernel and restartKernel.
type started struct {
	model Model
	err   error
}

// interruptKernel, restartKernel and shutdownKernel go to a kernel actor.
// interrupt and shutdown are answered with *result, restart with *started.
type (
	interruptKernel struct{}
	restartKernel   struct{}
	// keepKernel ends the kernel's actor but leaves its process running
	// for the next gateway process; answered with *result once gone.
	keepKernel struct{}
	// shutdownKernel ends a kernel; reason, when set, is what its clients
	// are told in the close frame (a cull, say).
	shutdownKernel struct{ reason string }
)

// result answers a request that returns only an error.
type result struct{ err error }

// drain tells the gateway actor to refuse new kernels and shut every kernel
// down; answered with *result once none is left.
type drain struct {
	keep bool // leave recorded kernels running (KeepKernelsOnStop)
}

// recoverKernel asks the gateway actor to take back a recorded kernel;
// answered with *started.
type recoverKernel struct{ rec store.Record }

// Notices from kernel actors to the gateway actor: the kernel is up (its
// first launch succeeded), or it is gone (failed to start, shut down, dead).
type (
	kernelUp struct {
		h      *kernelHandle
		waiter *actor.PID // the start request to answer once it is listed
	}
	kernelGone struct {
		id      string
		waiters []*actor.PID // shutdown requests to answer once it is gone
	}
	// goneAck tells a finishing kernel actor it is out of the registry.
	goneAck struct{}
	// goneWaiters are shutdowns that reached a kernel actor after it left
	// the registry: the gateway answers them after its kernelGone.
	goneWaiters struct{ waiters []*actor.PID }
)

// Messages a kernel actor gets from its launch's readers and from timers
// (the runner's are in runner.go). gen is the launch they belong to; a
// message from an earlier launch is stale and dropped.
type (
	zmqIn struct {
		gen uint64
		zmq.Received
		inbox *inbox // released when the actor takes it
	}
	nudgeTick struct{ gen uint64 }
	// cleanupTimeout: a finished kernel's cleanup has taken long enough.
	cleanupTimeout struct{}
	// persisted: the launch's record is written (queued after its save).
	persisted struct{ gen uint64 }
	// forgotten: a finished kernel's record and provisioner are done with
	// it (see forget).
	forgotten struct{}
	// hbSilent and hbStale come from the heartbeat wheel (heartbeat.go).
	hbSilent struct {
		gen    uint64
		silent time.Duration
	}
	hbStale       struct{ gen uint64 }
	pollTick      struct{ gen uint64 }
	shutdownStage struct {
		gen   uint64
		stage int
	}
)

// inspect and gatewayInspect run f inside a kernel actor or the gateway
// actor; tests use them to read or disturb actor state from the actor's
// own goroutine.
type (
	inspect        func(*kernelActor)
	gatewayInspect func(*gatewayActor)
)
