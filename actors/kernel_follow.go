package actors

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/actors/admission"
	"github.com/kernelgate/kernelgate/actors/proxy"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/zmq"
)

// A follower is a kernel actor of a replica that does not own its kernel
// (see Replication): it connects its own channels to the kernel and serves
// the kernel's clients here, but it never restarts, culls or signals the
// kernel; its owner does, and a follower learns of it from the kernel's
// record (a new connection after a restart, no record after a shutdown).

// followed is a kernel another replica owns, as the follower's runner
// sees it: where to connect, nothing to signal or clean up. It never ends
// on its own: its record says when it did.
type followed struct{ rec store.Record }

var _ proxy.Kernel = followed{}

func (f followed) ConnectionInfo() zmq.ConnectionInfo { return f.rec.Connection }
func (f followed) Exited() <-chan struct{}            { return nil }
func (f followed) ExitErr() error                     { return nil }
func (f followed) Cleanup() error                     { return nil }
func (f followed) ProcessInfo() json.RawMessage       { return f.rec.ProcessInfo }
func (f followed) Signal(syscall.Signal) error        { return ErrNotOwner }

// followStarter is a follower launch: connect to the recorded kernel.
func followStarter(rec store.Record) func(context.Context) (proxy.Kernel, error) {
	return func(context.Context) (proxy.Kernel, error) { return followed{rec: rec}, nil }
}

// onRecord serves *recordNow: a follower whose kernel's connection changed
// (its owner restarted it) reconnects, telling its clients the kernel is
// restarting, as the owner tells its own.
func (k *kernelActor) onRecord(rec store.Record) {
	if !k.follower || k.record == nil || sameKernel(k.record.Connection, rec.Connection) {
		return
	}
	k.log.Info().Msg("the kernel's owner restarted it; following the new launch")
	k.record = &rec
	k.h.setState(StateRestarting)
	k.broadcastStatus(StateRestarting)
	k.refollow()
}

// refollow connects the follower again, to k.record.
func (k *kernelActor) refollow() {
	k.releaseRun(true, nil)
	if k.phase != phaseStarting {
		k.phase = phaseRestarting
	}
	k.launch()
}

func sameKernel(a, b zmq.ConnectionInfo) bool {
	return a.IP == b.IP && a.Key == b.Key && a.ShellPort == b.ShellPort && a.IOPubPort == b.IOPubPort
}

// onRecordGone serves *recordGone: the owner shut the kernel down. A
// sender is answered once the kernel has left the registry here.
func (k *kernelActor) onRecordGone(ctx actor.Context) {
	if !k.follower {
		if ctx.Sender() != nil {
			ctx.Respond(&result{})
		}
		return
	}
	k.awaitGone(ctx)
	if k.phase != phaseTerminating {
		k.log.Info().Msg("the kernel's owner shut it down")
		k.finish(ctx, nil)
	}
}

// promote serves *promote: this replica now owns the kernel (its owner is
// gone). It takes the kernel's process back through its provisioner while
// its channels here stay connected, so that its clients miss nothing (see
// onAdopted); a kernel that did not outlive its owner is started again, as
// after a death.
func (k *kernelActor) promote(rec store.Record) {
	if !k.follower {
		return
	}
	k.log.Info().Msg("taking the kernel over as its owner")
	k.follower = false
	k.h.follower.Store(false)
	k.record = nil
	k.takingOver = true
	if k.up && k.run.adopt(k.recoverer(rec), admission.LaunchTimeout(k.env["KERNEL_LAUNCH_TIMEOUT"], k.cfg.LaunchTimeout), rec) {
		return
	}
	k.recover(rec)
}

// recover launches the kernel again from its record: a launch that
// recovers it, else starts it anew.
func (k *kernelActor) recover(rec store.Record) {
	k.recovering = &rec
	k.releaseRun(true, nil)
	if k.phase != phaseStarting {
		k.phase = phaseRestarting
	}
	k.launch()
}

// onAdopted serves *adopted: the kernel's process is this replica's now,
// or it could not be taken back over the live channels: then a launch
// recovers it (or starts it again).
func (k *kernelActor) onAdopted(m *adopted) {
	if m.err != nil {
		k.log.Warn().Err(m.err).Msg("cannot take the kernel's process over; launching it again")
		k.recover(m.rec)
		return
	}
	k.takingOver = false
	k.conn.info, k.conn.poller = m.info, m.poller
	k.persist()
	if m.poller && k.cfg.hb == nil {
		k.schedule(k.cfg.LivenessInterval, &pollTick{gen: k.gen})
	}
	k.log.Info().Msg("kernel taken over")
}

// demote serves *demote: another replica holds the kernel's lease (this
// one stopped renewing it in time): this one only follows from now on,
// leaving the kernel's process to its new owner.
func (k *kernelActor) demote() {
	if k.follower || !k.up {
		return
	}
	k.log.Warn().Msg("another replica owns the kernel now; following it")
	k.follower = true
	k.h.follower.Store(true)
	k.record = &store.Record{ID: k.h.id, KernelName: k.spec.Name, Username: k.h.username, Connection: k.conn.ci, ProcessInfo: k.conn.info}
	k.refollow()
}

// placeOf is where session s stands, for another replica its client moves
// to: the last message of the kernel's own (which every replica has) that
// the client surely has, and the replies to its requests after it (which
// only this replica has).
func (k *kernelActor) placeOf(s *session) Handover {
	from := s.resume
	switch {
	case s.replaced != nil:
		from = s.replaced.resume(EndBroken)
	case s.w != nil:
		from = s.w.resume(EndBroken)
	}
	h := Handover{Known: true}
	if from > 1 && from-1 < k.output.oldest() {
		h.Lost = true
		return h
	}
	cur, _ := k.output.at(k.output.oldest())
	own := "kernelgate-" + k.h.id // the session of messages this replica made
	for e, ok := k.output.next(&cur); ok; e, ok = k.output.next(&cur) {
		seq := cur.seq - 1
		for _, mk := range s.merges {
			if mk.last == seq {
				if h.Merged == nil {
					h.Merged = make(map[string]string)
				}
				h.Merged[mk.msgID] = e.m.Head().MsgID
			}
		}
		switch {
		case seq < from && e.to == 0 && e.m.Head().Session != own:
			h.After = e.m.Head().MsgID
		case seq >= from && e.to == s.num:
			h.Routed = append(h.Routed, Routed{Channel: e.ch, Msg: e.m})
		}
	}
	return h
}

// handover serves *handoverReq: the session's place, and the session is
// let go. A connection still open here is taken over first (4000), and the
// answer waits (up to handoverWait) for how it ends, which says where its
// client stands.
func (k *kernelActor) handover(ctx actor.Context, m *handoverReq) {
	s, ok := k.sessions[m.sessionID]
	if !ok {
		ctx.Respond(&handoverRes{})
		return
	}
	s.handoverTo = append(s.handoverTo, ctx.Sender())
	if s.w == nil && s.replaced == nil {
		k.handOver(s)
		return
	}
	for _, w := range []*writer{s.w, s.replaced} {
		if w != nil {
			w.requestStop(stopWriter{code: CloseReplaced, reason: "replaced by a newer connection for this session"})
		}
	}
	k.schedule(handoverWait, &handoverTimeout{id: s.id})
}

// handoverWait bounds how long a handover waits for the session's
// connection here to end.
const handoverWait = 4 * time.Second

// handOver answers the session's handovers with its place and lets the
// session go.
func (k *kernelActor) handOver(s *session) {
	h := k.placeOf(s)
	for _, to := range s.handoverTo {
		k.sys.Root.Send(to, &handoverRes{h: h})
	}
	for _, w := range []*writer{s.w, s.replaced} {
		if w != nil {
			k.unplug(w)
		}
	}
	if !s.detached.IsZero() {
		k.cfg.Metrics.DetachedSessions.Add(-1)
	}
	delete(k.sessions, s.id)
	k.publishSessions()
	k.forgetOrphans(s)
}

// onHandoverTimeout serves *handoverTimeout: the connection did not end in
// time; the place is what its client confirmed.
func (k *kernelActor) onHandoverTimeout(m *handoverTimeout) {
	if s, ok := k.sessions[m.id]; ok && len(s.handoverTo) > 0 {
		k.handOver(s)
	}
}

// publishSessions tells the group which client sessions this kernel has
// here.
func (k *kernelActor) publishSessions() {
	ids := slices.Sorted(maps.Keys(k.sessions))
	k.h.sessionIDs.Store(&ids)
}

// beginFrom starts session s's writer where a handover from another
// replica says it stood, or, with no handover, where a client's last
// message says; a place lost with its replica is counted. The message the
// client had last (its own word, else the handover's) may not have reached
// this replica's log yet: the writer then waits for it, up to anchorWait.
func (k *kernelActor) beginFrom(s *session, h *Handover) {
	anchor := s.lastMsgID
	if h != nil {
		// Its requests in flight may have had their replies on a replica
		// that died (see kernel_orphans.go).
		s.adopt = !h.Known || h.Lost
		if h.Lost {
			k.cfg.Metrics.SessionGaps.Add(1)
			s.w.prelude = []Routed{{Channel: zmq.IOPub, Msg: gapNotice(k.h.id)}}
		}
		s.w.prelude = append(s.w.prelude, h.Routed...)
		if last, ok := h.Merged[anchor]; ok {
			// The client's last message was a merged one: it has every
			// message up to the last it stands for.
			anchor, s.lastMsgID = last, last
		}
		if anchor == "" {
			anchor = h.After
		}
	}
	head := k.output.head.Load()
	if anchor == "" {
		k.begin(s, head)
		return
	}
	if seq := k.output.find(anchor, s.num, head); seq > 0 {
		k.begin(s, seq+1)
		return
	}
	if h == nil {
		k.begin(s, head) // not from another replica: too old to find
		return
	}
	s.anchor, s.anchorFallback = anchor, head
	k.waitingAnchors++
	k.schedule(anchorWait, &anchorTimeout{id: s.id, w: s.w})
}

// anchorWait bounds how long a session moved from another replica waits
// for the message its client had last to reach this replica's log.
const anchorWait = time.Second

// anchored begins the sessions waiting for the message just logged at seq.
func (k *kernelActor) anchored(m *zmq.Message, seq uint64) {
	if k.waitingAnchors == 0 {
		return
	}
	id := m.Head().MsgID
	for _, s := range k.sessions {
		if s.anchor != "" && s.anchor == id {
			s.anchor = ""
			k.waitingAnchors--
			k.begin(s, seq+1)
		}
	}
}

// onAnchorTimeout serves *anchorTimeout: the message never came; the
// writer begins where the log stood when the session arrived.
func (k *kernelActor) onAnchorTimeout(m *anchorTimeout) {
	if s, ok := k.sessions[m.id]; ok && s.w == m.w && s.anchor != "" {
		s.anchor = ""
		k.waitingAnchors--
		k.cfg.Metrics.SessionGaps.Add(1)
		k.begin(s, s.anchorFallback)
	}
}

// gapNotice tells a client that output may be missing: the replica that
// served it stopped before it could hand the session over.
func gapNotice(kernelID string) *zmq.Message {
	m, err := zmq.NewMessage("stream", "kernelgate-"+kernelID, "kernelgate", nil, map[string]string{"name": "stderr",
		"text": "[kernelgate] the gateway replica that served this session stopped; output from its last moments may be missing\n"})
	if err != nil {
		return nil
	}
	return m
}
