package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// sendLater delivers msg to pid after d, from a timer (no goroutine waits
// meanwhile). The timer holds a fresh PID, not pid itself: a PID caches its
// actor's process, so a timer outliving its actor (a session's 10-minute
// expiry) would keep the stopped actor, its mailbox and its buffers in
// memory until it fired. A fresh PID finds the actor by id, or nobody.
func sendLater(sys *actor.ActorSystem, pid *actor.PID, d time.Duration, msg any) *time.Timer {
	target := actor.NewPID(pid.Address, pid.Id)
	return time.AfterFunc(d, func() { sys.Root.Send(target, msg) })
}
