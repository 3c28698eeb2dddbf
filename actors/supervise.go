package actors

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
)

// logPanics logs a panic in an actor's Receive with its stack (protoactor
// logs failures without one), then lets the supervisor handle it.
func logPanics(log zerolog.Logger) func(actor.ReceiverFunc) actor.ReceiverFunc {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			defer func() {
				if r := recover(); r != nil {
					log.Error().Str("panic", fmt.Sprint(r)).Str("message", fmt.Sprintf("%T", env.Message)).
						Str("stack", string(debug.Stack())).Msg("actor panicked")
					panic(r)
				}
			}()
			next(c, env)
		}
	}
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
