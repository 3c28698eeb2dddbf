package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/actors/admission"
	"github.com/kernelgate/kernelgate/actors/store"
	"github.com/kernelgate/kernelgate/zmq"
)

// Replication makes this gateway a replica of a group
// (EG_AVAILABILITY_MODE=replication): replicas share their kernel records,
// and any replica serves any kernel.
//
//   - Every replica follows every kernel of the group: it connects its own
//     channels to the kernel (a kernel takes several clients) and keeps its
//     own log of the kernel's output, so it answers for the kernel and
//     serves its websockets.
//   - One replica owns each kernel, by a lease in the group: it alone
//     restarts the kernel when it dies, culls it, and signals it; the others
//     forward interrupt, restart and shutdown to it. A replica that stops
//     renewing its leases (it died, it hangs) is replaced as owner within
//     the lease duration.
//   - A client that reconnects to another replica with its session id gets
//     what it missed: the new replica asks the others where the session
//     stood (the last message the client surely has, and the replies to its
//     requests after it) and goes on from there in its own log.
//   - Admission takes the group's lock, so limits hold across replicas.
type Replication struct {
	// ID names this replica in the group (leases, members).
	ID string
	// URL is where the other replicas reach this one's internal endpoints.
	URL string
	// Group holds the records, leases, the admission lock and the members.
	Group store.Group
	// LeaseDuration is how long a kernel's lease lasts unrenewed, which
	// bounds how long a dead owner goes unreplaced. Default 15 s.
	LeaseDuration time.Duration
	// Sync is how often the replica reads the group's records (kernels
	// started and ended elsewhere). Default 1 s.
	Sync time.Duration
	// Peers asks the other replicas.
	Peers Peers
}

// Peers is how a replica asks another one; package http implements it over
// the replicas' authenticated internal endpoints.
type Peers interface {
	// Act asks the replica at url to interrupt, restart or shut down kernel
	// id (action "interrupt", "restart" or "shutdown").
	Act(ctx context.Context, url, kernelID, action string) (Model, error)
	// Handover asks the replica at url where session sessionID of kernel
	// kernelID stands, and has it let the session go.
	Handover(ctx context.Context, url, kernelID, sessionID string) (Handover, error)
}

// Handover is where a client session stood on the replica it leaves.
type Handover struct {
	// Known is false when the replica has no such session.
	Known bool `json:"known"`
	// After is the msg_id of the last message the client surely has; the
	// session goes on after it in the next replica's log. Empty when the
	// client had nothing yet, or when its place is lost.
	After string `json:"after,omitempty"`
	// Lost is set when the replica no longer kept where the client stood.
	Lost bool `json:"lost,omitempty"`
	// Merged maps the msg_id of each merged message the session was sent
	// last (see coalescer) to that of the last message it stands for: a
	// client whose last message is one of them goes on after that one.
	Merged map[string]string `json:"merged,omitempty"`
	// Routed are the messages for this session alone (replies to its
	// requests) from after After on, which no other replica has: the
	// kernel sent them to the leaving replica's channels.
	Routed []Routed `json:"-"`
}

// Routed is one message of a Handover.
type Routed struct {
	Channel zmq.Channel
	Msg     *zmq.Message
}

var (
	// ErrNotOwner reports a kernel this replica follows but does not own,
	// for an action only its owner may take.
	ErrNotOwner = errors.New("another replica owns the kernel")
	// ErrOwnerGone reports a kernel whose owner cannot be reached: it died
	// or is stopping, and another replica takes the kernel over once the
	// owner's lease lapses. Callers wait for that and ask again.
	ErrOwnerGone = errors.New("the kernel's owner replica is gone")
)

func (r *Replication) applyDefaults() {
	if r.LeaseDuration <= 0 {
		r.LeaseDuration = 15 * time.Second
	}
	if r.Sync <= 0 {
		r.Sync = time.Second
	}
}

func (r *Replication) validate() error {
	switch {
	case r.ID == "":
		return errors.New("replication: no replica id")
	case r.Group == nil:
		return errors.New("replication: no group store")
	case r.Peers == nil:
		return errors.New("replication: no peer client")
	}
	return nil
}

// replica is a Gateway's part in its group.
type replica struct {
	g    *Gateway
	cfg  *Replication
	stop chan struct{}
	done chan struct{}

	mu        sync.Mutex
	handovers map[string]map[string]Handover // kernel → session → place, of kernels left running at stop

	view atomic.Pointer[[]MemberView] // the group at the last sync (see GroupMembers)
}

func (g *Gateway) startReplica() {
	r := &replica{g: g, cfg: g.cfg.Replication, stop: make(chan struct{}), done: make(chan struct{}),
		handovers: make(map[string]map[string]Handover)}
	g.replica = r
	go r.run()
}

// run keeps this replica in step with the group: it beats, renews the
// leases of the kernels it owns, takes over those whose owner is gone, and
// follows the kernels started elsewhere.
func (r *replica) run() {
	defer close(r.done)
	log := r.g.cfg.Logger.With().Str("replica", r.cfg.ID).Logger()
	sync := time.NewTicker(r.cfg.Sync)
	defer sync.Stop()
	renewEvery := r.cfg.LeaseDuration / 3
	lastRenew := time.Time{}
	var failures uint64
	for {
		if time.Since(lastRenew) >= renewEvery {
			if err := r.beat(); err != nil {
				if failures++; failures&(failures-1) == 0 {
					log.Warn().Err(err).Uint64("failures", failures).Msg("cannot reach the group's store")
				}
			}
			lastRenew = time.Now()
		}
		if err := r.syncRecords(); err != nil {
			if failures++; failures&(failures-1) == 0 {
				log.Warn().Err(err).Uint64("failures", failures).Msg("cannot read the group's records")
			}
		}
		select {
		case <-r.stop:
			return
		case <-sync.C:
		}
	}
}

// timedOut reports a store call that ran out of time: the store hangs, and
// each further call would wait as long, so the round stops there and the
// next tries again.
func timedOut(err error) bool { return errors.Is(err, context.DeadlineExceeded) }

// beat announces this replica and renews the leases of its kernels; a
// lease found taken means another replica owns the kernel now.
func (r *replica) beat() error {
	conns := map[string]int{}
	sessions := map[string][]string{}
	for _, h := range r.g.live.list() {
		if n := h.connections.Load(); n > 0 {
			conns[h.id] = int(n)
		}
		if ids := h.sessionIDs.Load(); ids != nil && len(*ids) > 0 {
			sessions[h.id] = *ids
		}
	}
	err := r.cfg.Group.Beat(store.Member{ID: r.cfg.ID, URL: r.cfg.URL, Connections: conns, Sessions: sessions})
	if timedOut(err) {
		return err
	}
	for _, h := range r.g.live.list() {
		if h.follower.Load() || h.forgotten.Load() {
			continue
		}
		ok, lerr := r.cfg.Group.Acquire(h.id, r.cfg.ID, r.cfg.LeaseDuration)
		if lerr != nil {
			if err = errors.Join(err, lerr); timedOut(lerr) {
				return err
			}
			continue
		}
		if !ok {
			r.g.sys.Root.Send(h.pid, &demote{})
		}
	}
	return err
}

// syncRecords reads the group's records and leases (a read of each, not
// one per kernel): new records are followed, changed ones tell their
// followers, and kernels whose owner is gone are taken over by whoever
// gets their lease first. A read that failed changes nothing: it says
// nothing of what ended.
func (r *replica) syncRecords() error {
	recs, err := r.cfg.Group.Load()
	if err != nil && !errors.Is(err, store.ErrUnreadable) {
		return err
	}
	leases, lerr := r.cfg.Group.Holders()
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	live := recs[:0]
	now := time.Now()
	owners := map[string]int{}
	for _, rec := range recs {
		if rec.Pending {
			continue
		}
		live = append(live, rec)
		if h, ok := r.g.live.get(rec.ID); ok && !h.follower.Load() {
			owners[r.cfg.ID]++
			continue // owned here
		}
		l := leases[rec.ID]
		if now.Before(l.Expires) {
			owners[l.Holder]++
		}
		if l.Holder != "" && l.Holder != r.cfg.ID && now.Before(l.Expires) {
			continue // another replica's
		}
		// Nobody holds it (its owner died or stopped), or this replica
		// does from before it restarted: take it.
		ok, aerr := r.cfg.Group.Acquire(rec.ID, r.cfg.ID, r.cfg.LeaseDuration)
		if ok {
			r.g.cfg.Logger.Info().Str("kernel_id", rec.ID).Str("previous_owner", leases[rec.ID].Holder).Msg("taking the kernel over")
			r.g.sys.Root.Send(r.g.pid, &takeOver{rec: rec})
		}
		if timedOut(aerr) {
			err = errors.Join(err, aerr)
			break
		}
	}
	// A kernel whose lease is current has an owner even while its record
	// is missing: between two pods, the Kubernetes store's garbage
	// collector may delete the record with the old pod, and the owner
	// writes it again for the new one.
	held := make(map[string]bool, len(leases))
	for id, l := range leases {
		held[id] = now.Before(l.Expires)
	}
	r.g.sys.Root.Send(r.g.pid, &groupSync{recs: live, held: held})
	if !timedOut(err) {
		r.see(owners)
	}
	return err
}

// MemberView is a replica of the group as this one saw it at its last
// sync.
type MemberView struct {
	ID   string
	URL  string
	Self bool
	// Live: it beat within a lease.
	Live bool
	// Kernels it owns.
	Kernels int
}

// see publishes the group's members with the kernels each owns.
func (r *replica) see(owners map[string]int) {
	members, err := r.cfg.Group.Members(24 * time.Hour)
	if err != nil {
		return // the last view stands
	}
	view := make([]MemberView, 0, len(members))
	for _, m := range members {
		view = append(view, MemberView{ID: m.ID, URL: m.URL, Self: m.ID == r.cfg.ID,
			Live: time.Since(m.Beat) <= r.cfg.LeaseDuration, Kernels: owners[m.ID]})
	}
	slices.SortFunc(view, func(a, b MemberView) int { return strings.Compare(a.ID, b.ID) })
	r.view.Store(&view)
}

// GroupMembers is the replica group as this replica saw it at its last sync
// (a second ago at most); nil outside a group. It never waits on the
// group's store.
func (g *Gateway) GroupMembers() []MemberView {
	if g.replica == nil {
		return nil
	}
	if v := g.replica.view.Load(); v != nil {
		return *v
	}
	return []MemberView{}
}

// close ends the replica's loop and gives up its leases, so that the others
// take its kernels over at once rather than after the lease duration.
func (r *replica) close() {
	close(r.stop)
	<-r.done
	for _, h := range r.g.live.list() {
		if !h.follower.Load() && timedOut(r.cfg.Group.Release(h.id, r.cfg.ID)) {
			return // the store hangs: the leases lapse instead
		}
	}
}

// Messages of replication.
type (
	// groupSync: the group's records as read now, and which kernels have
	// an owner whose lease is current.
	groupSync struct {
		recs []store.Record
		held map[string]bool
	}
	// takeOver: this replica got the lease of a kernel whose owner is gone.
	takeOver struct{ rec store.Record }
	// recordNow tells a follower the kernel's record as read now.
	recordNow struct{ rec store.Record }
	// recordGone tells a follower the kernel's record is gone: its owner
	// shut it down.
	recordGone struct{}
	// promote makes a follower the kernel's owner (with its record).
	promote struct{ rec store.Record }
	// demote makes an owner that lost its lease a follower.
	demote struct{}
	// handoverReq asks a kernel actor where a session stands and has it
	// let the session go; answered with *handoverRes.
	handoverReq     struct{ sessionID string }
	handoverRes     struct{ h Handover }
	handoverTimeout struct{ id string }
	anchorTimeout   struct {
		id string
		w  *writer
	}
	// followKernel asks the gateway actor to follow a kernel of the group
	// it has not seen yet; answered with *result.
	followKernel struct{ rec store.Record }
)

// admitInGroup takes the group's admission lock, checks the limits against
// every replica's kernels, and records a pending kernel that counts until
// forget is called (once the start has ended, well or not).
func (r *replica) admitInGroup(req StartRequest) (forget func(), err error) {
	env, err := admission.ClientEnv(req.Env, r.g.cfg.ClientEnvs)
	if err != nil {
		return nil, err
	}
	user := env["KERNEL_USERNAME"]
	if user == "" {
		user = r.g.cfg.DefaultUsername
	}
	grp := r.cfg.Group
	unlock, err := grp.Lock()
	if err != nil {
		return nil, fmt.Errorf("%w: the group's admission lock: %w", ErrShuttingDown, err)
	}
	defer unlock()
	recs, err := grp.Load()
	switch {
	case errors.Is(err, store.ErrUnreadable):
		r.g.cfg.Logger.Warn().Err(err).Msg("some kernel records are unreadable; not counted")
	case err != nil:
		return nil, fmt.Errorf("%w: counting the group's kernels: %w", ErrShuttingDown, err)
	}
	total, mine := 0, 0
	for _, rec := range recs {
		if rec.Pending && time.Since(rec.Admitted) > r.g.cfg.LaunchTimeout+30*time.Second {
			continue // a start that never ended (its replica died)
		}
		total++
		if rec.Username == user {
			mine++
		}
	}
	if err := admission.GatewayLimit(r.g.cfg.MaxKernels, total); err != nil {
		return nil, err
	}
	if err := admission.UserLimit(r.g.cfg.MaxKernelsPerUser, mine, user); err != nil {
		return nil, err
	}
	placeholder := uuid.NewString()
	if err := grp.Save(store.Record{ID: placeholder, Username: user, Pending: true, Admitted: time.Now()}); err != nil {
		return nil, fmt.Errorf("%w: recording the admission: %w", ErrShuttingDown, err)
	}
	return func() { grp.Delete(placeholder) }, nil
}

// owner finds the URL of the replica that owns kernel id.
func (r *replica) owner(id string) (string, error) {
	l, err := r.cfg.Group.Holder(id)
	if err != nil {
		return "", err
	}
	if l.Holder == "" || time.Now().After(l.Expires) {
		return "", fmt.Errorf("%w: %w: kernel %s has no owner right now (one takes over within %v)", ErrKernelUnavailable, ErrOwnerGone, id, r.cfg.LeaseDuration)
	}
	members, err := r.cfg.Group.Members(r.cfg.LeaseDuration)
	if err != nil {
		return "", err
	}
	for _, m := range members {
		if m.ID == l.Holder {
			return m.URL, nil
		}
	}
	return "", fmt.Errorf("%w: %w: kernel %s's owner %s is not beating", ErrKernelUnavailable, ErrOwnerGone, id, l.Holder)
}

// holder is the replica whose lease on kernel id is current, or "".
func (r *replica) holder(id string) string {
	l, err := r.cfg.Group.Holder(id)
	if err != nil || time.Now().After(l.Expires) {
		return ""
	}
	return l.Holder
}

// awaitNewOwner waits until kernel h has an owner other than was (this
// replica, or another with a current lease), or the deadline passes.
func (r *replica) awaitNewOwner(h *kernelHandle, was string, deadline time.Time) bool {
	tick := time.NewTicker(r.cfg.Sync / 4)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if !h.follower.Load() {
			return true
		}
		if now := r.holder(h.id); now != "" && now != was {
			return true
		}
		select {
		case <-tick.C:
		case <-r.stop:
			return false
		}
	}
	return false
}

// act forwards an action on kernel id to its owner.
func (r *replica) act(id, action string, timeout time.Duration) (Model, error) {
	url, err := r.owner(id)
	if err != nil {
		return Model{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.cfg.Peers.Act(ctx, url, id, action)
}

// handoverFrom asks the other live replicas where a session that is new
// here stood. A session that a replica gone (or not answering) held by its
// last beat is reported lost; one nobody knows is not Known.
func (r *replica) handoverFrom(kernelID, sessionID string) Handover {
	members, err := r.cfg.Group.Members(24 * time.Hour)
	if err != nil {
		return Handover{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), handoverWait+2*time.Second)
	defer cancel()
	type answer struct {
		h    Handover
		err  error
		held bool
	}
	answers := make(chan answer, len(members))
	asked, lost := 0, false
	for _, m := range members {
		if m.ID == r.cfg.ID {
			continue
		}
		held := slices.Contains(m.Sessions[kernelID], sessionID)
		if time.Since(m.Beat) > r.cfg.LeaseDuration {
			lost = lost || held // its place went with the replica
			continue
		}
		asked++
		go func() {
			h, err := r.cfg.Peers.Handover(ctx, m.URL, kernelID, sessionID)
			answers <- answer{h, err, held}
		}()
	}
	for range asked {
		a := <-answers
		switch {
		case a.err == nil && a.h.Known:
			return a.h
		case errors.Is(a.err, ErrOwnerGone): // it died a moment ago
			lost = lost || a.held
		}
	}
	return Handover{Known: lost, Lost: lost}
}

// keepHandover remembers where the sessions of a kernel left running at
// stop stood, for the replicas their clients reconnect to.
func (r *replica) keepHandover(kernelID string, sessions map[string]Handover) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handovers[kernelID] = sessions
}

// takeHandover returns (once) a kept session's place.
func (r *replica) takeHandover(kernelID, sessionID string) (Handover, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.handovers[kernelID][sessionID]
	if ok {
		delete(r.handovers[kernelID], sessionID)
	}
	return h, ok
}

// Handover serves another replica: where session sessionID of kernel
// kernelID stands here; the session is let go.
func (g *Gateway) Handover(kernelID, sessionID string) (Handover, error) {
	if g.replica != nil {
		if h, ok := g.replica.takeHandover(kernelID, sessionID); ok {
			return h, nil
		}
	}
	if h, err := g.handle(kernelID); err == nil {
		res, err := g.request(h.pid, &handoverReq{sessionID: sessionID}, handoverWait+time.Second)
		if err == nil {
			return res.(*handoverRes).h, nil
		}
		if !errors.Is(err, ErrNoSuchKernel) {
			return Handover{}, err
		}
	}
	// The kernel's actor stopped meanwhile (this replica is stopping): it
	// kept its sessions' places before it did.
	if g.replica != nil {
		if h, ok := g.replica.takeHandover(kernelID, sessionID); ok {
			return h, nil
		}
	}
	return Handover{}, nil // not here: the asker tries the others
}

// PendingHandovers is how many sessions of kernels left running at stop
// no replica has asked for yet.
func (g *Gateway) PendingHandovers() int {
	if g.replica == nil {
		return 0
	}
	g.replica.mu.Lock()
	defer g.replica.mu.Unlock()
	n := 0
	for _, s := range g.replica.handovers {
		n += len(s)
	}
	return n
}

// GroupView is a replica's view of its group, for metrics.
type GroupView struct {
	Owned    int // kernels this replica owns
	Known    int // kernels it serves: owned and followed
	Replicas int // replicas that beat within a lease, as of the last sync
}

// GroupView reads this replica's view of its group; false outside a group.
// It never waits on the group's store.
func (g *Gateway) GroupView() (GroupView, bool) {
	if g.replica == nil {
		return GroupView{}, false
	}
	var v GroupView
	for _, m := range g.GroupMembers() {
		if m.Live {
			v.Replicas++
		}
	}
	for _, h := range g.live.list() {
		v.Known++
		if !h.follower.Load() {
			v.Owned++
		}
	}
	return v, true
}
