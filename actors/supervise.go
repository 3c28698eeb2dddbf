package actors

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
)

// panicLogged wraps an actor so that a panic in its Receive is logged with
// its stack (protoactor logs failures without one) before the supervisor
// handles it. A receiver middleware could do the same, but protoactor then
// wraps every message in an envelope: an allocation a message on the hot
// path.
type panicLogged struct {
	actor.Actor
	log zerolog.Logger
}

func (p panicLogged) Receive(c actor.Context) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error().Str("panic", fmt.Sprint(r)).Str("message", fmt.Sprintf("%T", c.Message())).
				Str("stack", string(debug.Stack())).Msg("actor panicked")
			panic(r)
		}
	}()
	p.Actor.Receive(c)
}

// resumeSupervisor keeps a child that panicked running with its state: the
// message that caused the panic is dropped and nothing else notices. A child
// that panics more than maxFailures times within window is stopped.
type resumeSupervisor struct {
	maxFailures int
	window      time.Duration
}

var _ actor.SupervisorStrategy = resumeSupervisor{}

func (s resumeSupervisor) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID,
	rs *actor.RestartStatistics, _ any, _ any) {
	rs.Fail()
	if rs.NumberOfFailures(s.window) > s.maxFailures {
		sup.StopChildren(child)
		return
	}
	sup.ResumeChildren(child)
}
