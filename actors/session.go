package actors

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/kernelgate/kernelgate/zmq"
)

// A session is one client of a kernel: the session_id its websockets
// connect with. It holds at most one websocket at a time (a newer one
// takes over, as in Jupyter Server); between connections it keeps its place
// in the kernel's output log so that the next connection gets what it
// missed. Sessions are state of their kernel actor, not actors of their
// own: everything that happens to one (attach, detach, expiry, the routing
// of a reply) happens in its kernel's mailbox order anyway, and the output
// path does not go through it — writers read the log directly.
type session struct {
	id         string
	num        sessionNum
	replayable bool // the client chose the id, so it can come back for what it missed
	w          *writer
	// resume is, while no websocket is attached, the first seq the client
	// may not have received.
	resume uint64
	// replaced is an older connection of a takeover, still ending; w
	// begins once it has.
	replaced  *writer
	lastMsgID string // the last message the client of w says it has
	// merges are the merged messages the session's last connection wrote
	// not long before it ended: a client that has one last resumes after
	// the last message it stands for, not after the first.
	merges []mergeMark
	// adopt: the session is new here and no live replica knew it; its
	// writer's begin adopts its requests in flight (kernel_orphans.go).
	adopt bool
	// handoverTo are other replicas waiting for the session's place (see
	// handover): it goes to them once its connection here has ended.
	handoverTo []*actor.PID
	// anchor is the message a session moved from another replica waits
	// for before its writer begins (see beginFrom); anchorFallback is
	// where it begins if the message never comes.
	anchor         string
	anchorFallback uint64
	detached       time.Time
	expiries       uint64        // bumped by every attach: a stale expiry is ignored
	limiter        *iopubLimiter // nil when iopub rate limits are off
}

// Messages about sessions.
type (
	// attachWS attaches a websocket to a session, creating the session on
	// first use; answered with *attached. lastMsgID, when set, is the last
	// message the client has (kernelgate's ?last_msg_id=): it gets exactly
	// what followed.
	attachWS struct {
		sessionID  string
		replayable bool // the client sent this session id (else it is made up)
		lastMsgID  string
		sock       Socket
		// probe asks, in a replica group, to be told (needHandover) when
		// the session is new here, so that its place is asked of the
		// other replicas first; handover is that place, once asked.
		probe    bool
		handover *Handover
	}
	attached struct {
		w            *writer
		num          sessionNum
		needHandover bool
		err          error
	}
	// detachWS: a websocket's connection has ended, as ending says, and
	// its writer has stopped; answered with *result.
	detachWS struct {
		sessionID string
		w         *writer
		ending    Ending
	}
	// learnRoute: replies to requests whose header.session is header go to
	// the session numbered to.
	learnRoute struct {
		header string
		to     sessionNum
	}
	// sessionExpire ends a detached session no websocket came back to.
	sessionExpire struct {
		id      string
		expires uint64
	}
	// endTimeout bounds how long a finished kernel waits for its clients'
	// goodbyes.
	endTimeout struct{}
	// takeoverTimeout: the older connection of a takeover did not end in
	// time.
	takeoverTimeout struct {
		id string
		w  *writer
	}
)

// attach serves *attachWS.
func (k *kernelActor) attach(ctx actor.Context, m *attachWS) {
	if k.phase == phaseTerminating {
		ctx.Respond(&attached{err: fmt.Errorf("%w: kernel %s is going away", ErrNoSuchKernel, k.h.id)})
		return
	}
	s, ok := k.sessions[m.sessionID]
	if !ok && m.probe && m.replayable {
		ctx.Respond(&attached{needHandover: true})
		return
	}
	if !ok {
		if len(k.sessions) >= k.cfg.MaxSessionsPerKernel && !k.evictOldestDetached() {
			ctx.Respond(&attached{err: fmt.Errorf("%w: kernel %s already has %d sessions connected", ErrLimit, k.h.id, len(k.sessions))})
			return
		}
		k.lastSession++
		s = &session{id: m.sessionID, num: k.lastSession, resume: k.output.head.Load(), limiter: newIOPubLimiter(k.cfg)}
		k.sessions[m.sessionID] = s
		k.publishSessions()
	}
	w := newWriter(k, m.sock, s, k.log.With().Str("session", s.id).Logger())
	go w.run()
	k.h.connections.Add(1)
	old := s.w
	s.w, s.replayable, s.lastMsgID = w, m.replayable, m.lastMsgID
	s.expiries++
	switch {
	case s.replaced != nil:
		// An older connection is still ending: this one waits for it too,
		// and one that waited before it, never begun, just goes.
		if old != nil {
			old.requestStop(stopWriter{code: CloseReplaced, reason: "replaced by a newer connection for this session"})
		}
		k.schedule(takeoverWait, &takeoverTimeout{id: s.id, w: w})
	case old != nil:
		// Two live connections with one session id: the newer wins. The
		// older stops after the write it is in; the newer begins once the
		// older has ended, from where its ending says (see Ending), or
		// after takeoverWait from what the older's client confirmed.
		k.unplug(old)
		old.requestStop(stopWriter{code: CloseReplaced, reason: "replaced by a newer connection for this session"})
		s.replaced = old
		k.schedule(takeoverWait, &takeoverTimeout{id: s.id, w: w})
	case !ok && (m.handover != nil || m.lastMsgID != ""):
		k.beginFrom(s, m.handover) // new here: where it stood elsewhere
	default:
		if !s.detached.IsZero() {
			s.detached = time.Time{}
			k.cfg.Metrics.DetachedSessions.Add(-1)
		}
		k.begin(s, s.resume)
	}
	ctx.Respond(&attached{w: w, num: s.num})
}

// mergedUpTo returns the seq of the last message that msgID, a merged
// message the session's last connection wrote, stands for.
func (s *session) mergedUpTo(msgID string) (uint64, bool) {
	for _, mk := range s.merges {
		if mk.msgID == msgID {
			return mk.last, true
		}
	}
	return 0, false
}

// takeoverWait bounds how long a newer connection waits for the older one
// it replaces to end: the older's writer grace and its close handshake.
const takeoverWait = writerGrace + 3*time.Second

// begin starts the session's writer at from, or right after the message the
// client says it has (all of them, for a merged message).
func (k *kernelActor) begin(s *session, from uint64) {
	if s.lastMsgID != "" {
		if last, ok := s.mergedUpTo(s.lastMsgID); ok {
			from = last + 1
		} else if seq := k.output.find(s.lastMsgID, s.num, k.output.head.Load()); seq > 0 {
			from = seq + 1
		}
	}
	if s.adopt {
		s.adopt = false
		k.adoptOrphans(s, from)
	}
	if lost := s.w.begin(from); lost > 0 {
		k.cfg.Metrics.BufferDropped.Add(lost)
		lostWarning(k.log, &k.lost, lost, s.id)
	}
	k.attached = append(k.attached, s.w)
}

// takeover serves *takeoverTimeout: the older connection has not ended in
// time; the newer starts from what the older's client confirmed.
func (k *kernelActor) takeover(m *takeoverTimeout) {
	if s, ok := k.sessions[m.id]; ok && s.w == m.w && s.replaced != nil {
		from := s.replaced.resume(EndBroken)
		s.replaced = nil
		k.begin(s, from)
	}
}

// unplug takes a writer off the kicked list (its connection counts until it
// is detached) and reports whether it was on it.
func (k *kernelActor) unplug(w *writer) bool {
	i := slices.Index(k.attached, w)
	if i >= 0 {
		k.attached = slices.Delete(k.attached, i, i+1)
	}
	return i >= 0
}

// detach serves *detachWS: the connection of w has ended.
func (k *kernelActor) detach(ctx actor.Context, m *detachWS) {
	defer ctx.Respond(&result{})
	k.h.connections.Add(-1)
	if k.unplug(m.w) && k.farewells > 0 && slices.Contains(k.farewellsFrom, m.w) {
		defer k.farewell(ctx)
	}
	s, ok := k.sessions[m.sessionID]
	if ok && (m.w == s.w || m.w == s.replaced) {
		if mk := m.w.mergeMarks(); mk != nil {
			s.merges = mk
		}
	}
	switch {
	case !ok:
	case m.w == s.replaced:
		// The older connection of a takeover has ended: the newer begins
		// where it left off, or, if the newer is gone already, the session
		// waits there.
		s.replaced = nil
		if len(s.handoverTo) > 0 {
			s.resume = m.w.resume(m.ending)
			if s.w == nil {
				k.handOver(s)
			}
			return
		}
		if from := m.w.resume(m.ending); s.w != nil {
			k.begin(s, from)
		} else {
			s.resume = from
			k.detached(s)
		}
	case m.w != s.w:
		// Replaced meanwhile: the newer connection carries on.
	case s.replaced != nil:
		// It never began: the older connection's end decides where the
		// session stands.
		s.w = nil
	default:
		s.w, s.resume = nil, m.w.resume(m.ending)
		if len(s.handoverTo) > 0 && s.replaced == nil {
			k.handOver(s)
			return
		}
		k.detached(s)
	}
}

// detached keeps a session without a websocket for its client's return,
// until it expires, unless it cannot come back.
func (k *kernelActor) detached(s *session) {
	if !s.replayable || k.phase == phaseTerminating && !k.handsOver() {
		k.endSession(s)
		return
	}
	s.detached = time.Now()
	k.cfg.Metrics.DetachedSessions.Add(1)
	sendLater(k.sys, k.self, k.cfg.SessionExpiry, &sessionExpire{id: s.id, expires: s.expiries})
	// Detached sessions are bounded per gateway: beyond the bound this
	// kernel lets its oldest go (possibly this one).
	if k.cfg.Metrics.DetachedSessions.Load() > int64(k.cfg.MaxDetachedSessions) {
		k.evictOldestDetached()
	}
	k.trimOutput()
}

// expire serves *sessionExpire.
func (k *kernelActor) expire(m *sessionExpire) {
	if s, ok := k.sessions[m.id]; ok && s.w == nil && s.expiries == m.expires {
		k.log.Debug().Str("session", s.id).Msg("session expired")
		k.endSession(s)
		k.trimOutput()
	}
}

// evictOldestDetached ends the session detached longest ago; false when
// every session has a websocket.
func (k *kernelActor) evictOldestDetached() bool {
	var oldest *session
	for _, s := range k.sessions {
		if s.w == nil && (oldest == nil || s.detached.Before(oldest.detached)) {
			oldest = s
		}
	}
	if oldest == nil {
		return false
	}
	k.cfg.Metrics.SessionsEvicted.Add(1)
	if n := k.cfg.Metrics.SessionsEvicted.Load(); lograte.Crossed(n-1, n) {
		k.log.Warn().Str("session", oldest.id).Uint64("evicted", n).Msg("too many sessions; the oldest detached one is dropped")
	}
	k.endSession(oldest)
	return true
}

// endSession forgets a session without a websocket; what the log held for
// it and it never got is counted as dropped.
func (k *kernelActor) endSession(s *session) {
	if !s.detached.IsZero() {
		k.cfg.Metrics.DetachedSessions.Add(-1)
		cur, _ := k.output.at(s.resume)
		n, _ := k.output.behind(cur)
		k.cfg.Metrics.BufferDropped.Add(n)
	}
	delete(k.sessions, s.id)
	k.publishSessions()
	k.forgetOrphans(s)
	for key, num := range k.routes {
		if num == s.num {
			delete(k.routes, key)
		}
	}
}

// trimOutput lets the log drop what no session can still need: every
// session's resume point (a connected one's is what its client confirmed);
// and tells it what connected clients have not confirmed yet, which it
// keeps (see outLog.pin).
func (k *kernelActor) trimOutput() {
	head := k.output.head.Load()
	keep, pin := head, uint64(math.MaxUint64)
	for _, s := range k.sessions {
		switch {
		case s.replaced != nil:
			keep = min(keep, s.replaced.resume(EndBroken))
		case s.w != nil:
			keep = min(keep, s.w.resume(EndBroken))
		default:
			keep = min(keep, s.resume)
		}
	}
	for _, w := range k.attached {
		// A client that confirms nothing (no pongs) pins no more than a
		// few times the log's own bound.
		if r := w.resume(EndBroken); head-r <= pinFactor*uint64(k.cfg.SessionBuffer) {
			pin = min(pin, r)
		}
	}
	k.output.trim(keep, pin)
}

// pinFactor times KERNELGATE_SESSION_BUFFER entries is the most the log
// keeps for a connected client beyond its bounds.
const pinFactor = 4

// learn serves *learnRoute, bounded: a client cannot grow the table at will.
func (k *kernelActor) learn(m *learnRoute) {
	if _, ok := k.routes[m.header]; ok || len(k.routes) < 4*len(k.sessions)+64 {
		k.routes[m.header] = m.to
	}
}

// publish appends a message for clients to the log and tells the
// connected writers; a client that has fallen too far behind, even with
// its backlog merged, is sent away (1013) and comes back for the rest.
func (k *kernelActor) publish(ch zmq.Channel, m *zmq.Message, to sessionNum) {
	if lost := k.output.append(ch, m, to); lost > 0 {
		k.cfg.Metrics.BufferDropped.Add(lost)
	}
	k.anchored(m, k.output.head.Load()-1)
	for i := 0; i < len(k.attached); i++ {
		w := k.attached[i]
		if lag, over := w.tooFarBehind(); over {
			k.cfg.Metrics.SlowConsumers.Add(1)
			w.logger.Warn().Uint64("behind", lag.seq).Uint64("bytes", lag.bytes).Uint64("unmergeable", lag.hard).
				Uint64("merged_bytes", lag.merged).Msg("websocket client too slow; sending it away")
			w.requestStop(stopWriter{code: CloseTryAgain, reason: "client too slow: backlog exceeded"})
			k.unplug(w)
			i--
			continue
		}
		w.poke()
	}
	if k.appends++; k.appends%1024 == 0 {
		k.trimOutput()
	}
}

// broadcastStatus tells every client a status the kernel itself never
// sends (restarting, dead).
func (k *kernelActor) broadcastStatus(state string) {
	st, err := zmq.NewMessage("status", "kernelgate-"+k.h.id, "kernelgate", nil, map[string]string{"execution_state": state})
	if err == nil {
		k.publish(zmq.IOPub, st, 0)
	}
}

// endSessions says goodbye to every connected client (after what the log
// holds for it) with the kernel's close code; the actor stops once they
// are all gone, or after endGrace.
func (k *kernelActor) endSessions(ctx actor.Context) {
	code := CloseNormal
	if k.kept {
		code = CloseGoingAway
	}
	k.farewells, k.farewellsFrom = len(k.attached), slices.Clone(k.attached)
	for _, w := range k.attached {
		w.requestStop(stopWriter{code: code, reason: k.closeReason, drain: true})
	}
	for _, s := range k.sessions {
		switch {
		case s.replaced != nil && s.w != nil: // never began: goodbye at once
			s.w.requestStop(stopWriter{code: code, reason: k.closeReason})
		case s.w == nil && !k.handsOver():
			k.endSession(s)
		}
	}
	if k.farewells == 0 {
		k.stopping(ctx)
		return
	}
	sendLater(k.sys, k.self, endGrace+writerGrace, &endTimeout{})
}

// handsOver reports a kernel left running by a replica that stops: its
// sessions' places go to the gateway, for the replicas their clients move
// to.
func (k *kernelActor) handsOver() bool { return k.kept && k.cfg.Replication != nil }

// stopping stops the actor, handing its sessions' places over first when
// the kernel lives on elsewhere.
func (k *kernelActor) stopping(ctx actor.Context) {
	if k.handsOver() && len(k.sessions) > 0 {
		places := make(map[string]Handover, len(k.sessions))
		for id, s := range k.sessions {
			places[id] = k.placeOf(s)
		}
		// Kept before the actor stops, so that a handover request that
		// finds the actor gone finds the places.
		k.replica.keepHandover(k.h.id, places)
	}
	ctx.Stop(k.self)
}

// farewell counts a client's goodbye (its connection detached) during the
// kernel's end; after the last one the actor stops.
func (k *kernelActor) farewell(ctx actor.Context) {
	if k.farewells--; k.farewells == 0 {
		k.stopping(ctx)
	}
}

// endGrace bounds how long a finished kernel's clients get to read its
// last messages.
const endGrace = 5 * time.Second
