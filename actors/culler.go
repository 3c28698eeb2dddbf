package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// cullerActor shuts down idle kernels every CullInterval, with Enterprise
// Gateway's rules: a dead kernel always goes; otherwise a kernel idle longer
// than CullIdleTimeout goes unless it is busy (and CullBusy is off) or has
// websockets (and CullConnected is off).
type cullerActor struct {
	cfg *Config
	reg *Gateway
}

type cullTick struct{}

func (c *cullerActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started, *cullTick:
		if _, tick := ctx.Message().(*cullTick); tick {
			c.cull(ctx)
		}
		sendLater(ctx.ActorSystem(), ctx.Self(), c.cfg.CullInterval, &cullTick{})
	}
}

func (c *cullerActor) cull(ctx actor.Context) {
	now := time.Now()
	for _, h := range c.reg.live.list() {
		if h.follower.Load() {
			continue // its owner culls it
		}
		state := *h.state.Load()
		idle := now.Sub(time.Unix(0, h.lastActivity.Load()))
		switch {
		case state == StateDead:
		case idle <= c.cfg.CullIdleTimeout:
			continue
		case state == StateBusy && !c.cfg.CullBusy:
			continue
		case h.connections.Load() > 0 && !c.cfg.CullConnected:
			continue
		}
		c.cfg.Logger.Info().Str("kernel_id", h.id).Str("state", state).Dur("idle", idle).
			Int32("connections", h.connections.Load()).Msg("culling idle kernel")
		c.cfg.Metrics.Culled.Add(1)
		ctx.Send(h.pid, &shutdownKernel{reason: "kernel culled after " + idle.Round(time.Second).String() + " of inactivity"})
	}
}
