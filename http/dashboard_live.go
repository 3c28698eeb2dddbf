package http

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/kernelgate/kernelgate/internal/lograte"
	"github.com/valyala/fasthttp"
)

// Bounds of the dashboard's live half.
const (
	// refreshEvery is how often open pages are told what changed: at most
	// once a second, whatever happens.
	refreshEvery = time.Second
	// maxStreams bounds the event streams open at once (pages, tabs); one
	// more is answered 503.
	maxStreams = 16
	// streamQueue is how many frames a stream may have waiting; a page
	// that falls further behind is dropped (it reconnects and gets the
	// whole state again).
	streamQueue = 4
	// streamWriteTimeout is how long one write to a page may take.
	streamWriteTimeout = 10 * time.Second
	// streamReadLimit is what a page may send on its stream (nothing: an
	// EventSource sends its request and then only reads).
	streamReadLimit = 1 << 10
)

// live is the dashboard's moving part. One goroutine (run) samples the
// gateway's vitals every vitalsEvery into an hour-long ring and, while any
// page is open, reads every kernel's figures once a second and pushes what
// changed to every page's stream. With no page open it costs a sample every
// few seconds; each stream costs two goroutines and at most streamQueue
// frames, shared by all streams, and a page that goes takes them with it.
type live struct {
	srv     *Server
	started time.Time

	mu      sync.Mutex
	running bool // run is serving joins
	closed  bool // stopped for good
	streams map[*stream]struct{}
	wg      sync.WaitGroup // streams being served

	joins chan *stream
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	// Owned by run.
	vitals      *vitals
	rows        map[string]kernelRow // what the pages were last told
	order       []string             // kernel ids, oldest first
	counts      map[string][2]uint64 // messages in and out at the last refresh
	lastRefresh time.Time
	dropped     uint64 // streams dropped for falling behind, for the log
}

// stream is one page's event stream.
type stream struct {
	conn   net.Conn
	frames chan []byte // closed when the stream is dropped or the server stops
	ready  bool        // has its first, whole state: it may get changes
}

func newLive(s *Server) *live {
	return &live{srv: s, started: time.Now(), streams: make(map[*stream]struct{}),
		joins: make(chan *stream), stop: make(chan struct{}), done: make(chan struct{}),
		vitals: newVitals(), rows: make(map[string]kernelRow), counts: make(map[string][2]uint64)}
}

// start runs the live half until shutdown; only the first call does.
func (l *live) start() {
	l.once.Do(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.closed {
			return
		}
		l.running = true
		go l.run()
	})
}

// shutdown stops run, ends every stream and waits for them (until ctx
// ends).
func (l *live) shutdown(ctx context.Context) {
	l.mu.Lock()
	running := l.running
	l.closed, l.running = true, false
	l.mu.Unlock()
	if running {
		close(l.stop)
		<-l.done
	}
	l.mu.Lock()
	for st := range l.streams {
		l.drop(st)
	}
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (l *live) run() {
	defer close(l.done)
	tick := time.NewTicker(refreshEvery)
	defer tick.Stop()
	gw := l.srv.gw
	l.vitals.sample(gw, time.Now())
	nextVital := time.Now().Add(vitalsEvery)
	for {
		select {
		case <-l.stop:
			return
		case st := <-l.joins:
			l.welcome(st)
		case now := <-tick.C:
			var point *vitalPoint
			if !now.Before(nextVital) {
				point = l.vitals.sample(gw, now)
				nextVital = now.Add(vitalsEvery)
			}
			if l.count() > 0 {
				l.broadcast(l.update(now, point))
			}
		}
	}
}

func (l *live) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.streams)
}

func (l *live) readyStreams() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for st := range l.streams {
		if st.ready {
			n++
		}
	}
	return n
}

// kernelRow is one kernel as the pages show it. Rows are compared to send
// only those that changed.
type kernelRow struct {
	ID           string  `json:"id"`
	User         string  `json:"user"`
	Kernelspec   string  `json:"kernelspec"`
	Provisioner  string  `json:"provisioner"`
	Host         string  `json:"host"`
	State        string  `json:"state"`
	Connections  int     `json:"connections"`
	LastActivity int64   `json:"last_activity"` // unix ms
	Started      int64   `json:"started"`       // unix ms; 0 while starting
	Restarts     int     `json:"restarts"`
	RateIn       float64 `json:"rate_in"`  // client messages to the kernel per second
	RateOut      float64 `json:"rate_out"` // kernel messages to clients per second
}

type userRow struct {
	User    string `json:"user"`
	Kernels int    `json:"kernels"`
	Limit   int    `json:"limit"` // negative: none
}

type poolRow struct {
	Kernelspec string `json:"kernelspec"`
	Size       int    `json:"size"`
	Warm       int    `json:"warm"`
	Booting    int    `json:"booting"`
}

type gatewayRow struct {
	Version           string    `json:"version"`
	Started           int64     `json:"started"` // unix ms
	Accepting         bool      `json:"accepting"`
	Draining          bool      `json:"draining"`
	MaxKernels        int       `json:"max_kernels"`
	MaxKernelsPerUser int       `json:"max_kernels_per_user"`
	Kernels           int       `json:"kernels"`
	Connections       int       `json:"connections"`
	Replicas          []Replica `json:"replicas"` // null: not replicated
}

// A page's first frame ("state") is everything; the others ("update") carry
// the kernels that changed or went, the small tables whole, and the vitals
// point sampled since, if any.
type (
	stateFrame struct {
		Now     int64          `json:"now"`
		Gateway gatewayRow     `json:"gateway"`
		Kernels []kernelRow    `json:"kernels"`
		Users   []userRow      `json:"users"`
		Pools   []poolRow      `json:"pools"`
		Vitals  map[string]any `json:"vitals"`
	}
	updateFrame struct {
		Now     int64       `json:"now"`
		Gateway gatewayRow  `json:"gateway"`
		Kernels []kernelRow `json:"kernels"`
		Removed []string    `json:"removed"`
		Users   []userRow   `json:"users"`
		Pools   []poolRow   `json:"pools"`
		Vital   *vitalPoint `json:"vital,omitempty"`
	}
)

// refresh reads every kernel and returns the rows that changed and the ids
// that went since the last refresh. Rates are over the time since; after a
// pause (no page was open) they start again at 0.
func (l *live) refresh(now time.Time) (changed []kernelRow, removed []string) {
	stats := l.srv.gw.KernelStats()
	dt := now.Sub(l.lastRefresh).Seconds()
	rated := !l.lastRefresh.IsZero() && dt > 0 && dt < 3*refreshEvery.Seconds()
	l.lastRefresh = now
	l.order = l.order[:0]
	seen := make(map[string]bool, len(stats))
	for _, st := range stats {
		row := kernelRow{ID: st.ID, User: st.User, Kernelspec: st.Name, Provisioner: st.Provisioner, Host: st.Host,
			State: st.ExecutionState, Connections: st.Connections, LastActivity: st.Active.UnixMilli(), Restarts: st.Restarts}
		if !st.Started.IsZero() {
			row.Started = st.Started.UnixMilli()
		}
		if prev, ok := l.counts[st.ID]; ok && rated {
			row.RateIn = rate(st.MessagesIn-prev[0], dt)
			row.RateOut = rate(st.MessagesOut-prev[1], dt)
		}
		l.counts[st.ID] = [2]uint64{st.MessagesIn, st.MessagesOut}
		if old, ok := l.rows[st.ID]; !ok || old != row {
			l.rows[st.ID] = row
			changed = append(changed, row)
		}
		seen[st.ID] = true
		l.order = append(l.order, st.ID)
	}
	for id := range l.rows {
		if !seen[id] {
			delete(l.rows, id)
			delete(l.counts, id)
			removed = append(removed, id)
		}
	}
	slices.Sort(removed)
	return changed, removed
}

// rate is n per dt seconds, to a tenth.
func rate(n uint64, dt float64) float64 { return math.Round(float64(n)/dt*10) / 10 }

// tables returns the small tables, from the rows as last refreshed.
func (l *live) tables() (gatewayRow, []userRow, []poolRow) {
	gw := l.srv.gw
	limits := gw.Limits()
	g := gatewayRow{Version: l.srv.cfg.Version, Started: l.started.UnixMilli(), Accepting: gw.Accepting(), Draining: gw.Draining(),
		MaxKernels: limits.MaxKernels, MaxKernelsPerUser: limits.MaxKernelsPerUser, Kernels: len(l.rows)}
	if ms := gw.GroupMembers(); ms != nil {
		g.Replicas = make([]Replica, len(ms))
		for i, m := range ms {
			g.Replicas[i] = Replica{Name: m.ID, Ready: m.Live, Kernels: m.Kernels, Self: m.Self}
		}
	}
	perUser := map[string]int{}
	for _, r := range l.rows {
		perUser[r.User]++
		g.Connections += r.Connections
	}
	users := make([]userRow, 0, len(perUser))
	for u, n := range perUser {
		users = append(users, userRow{User: u, Kernels: n, Limit: limits.MaxKernelsPerUser})
	}
	slices.SortFunc(users, func(a, b userRow) int {
		if a.Kernels != b.Kernels {
			return b.Kernels - a.Kernels
		}
		return cmpString(a.User, b.User)
	})
	pools := []poolRow{}
	for _, p := range gw.Pools() {
		pools = append(pools, poolRow{Kernelspec: p.Kernelspec, Size: p.Size, Warm: p.Warm, Booting: p.Starting})
	}
	return g, users, pools
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (l *live) update(now time.Time, point *vitalPoint) []byte {
	changed, removed := l.refresh(now)
	g, users, pools := l.tables()
	return sseFrame("update", updateFrame{Now: now.UnixMilli(), Gateway: g, Kernels: nonNil(changed), Removed: nonNil(removed),
		Users: users, Pools: pools, Vital: point})
}

// welcome gives a new stream the whole state, then lets it have changes.
// With other streams open, the state is the rows they were last told (at
// most a refresh old), so that the next change frame fits every stream.
func (l *live) welcome(st *stream) {
	now := time.Now()
	if l.readyStreams() == 0 {
		l.refresh(now) // nobody is told changes relative to the rows
	}
	g, users, pools := l.tables()
	rows := make([]kernelRow, 0, len(l.order))
	for _, id := range l.order {
		if r, ok := l.rows[id]; ok {
			rows = append(rows, r)
		}
	}
	frame := sseFrame("state", stateFrame{Now: now.UnixMilli(), Gateway: g, Kernels: rows, Users: users, Pools: pools,
		Vitals: l.vitals.columns()})
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.streams[st]; ok {
		st.frames <- frame // its queue is empty: it has had nothing yet
		st.ready = true
	}
}

// broadcast queues frame on every ready stream, dropping those whose queue
// is full.
func (l *live) broadcast(frame []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for st := range l.streams {
		if !st.ready {
			continue
		}
		select {
		case st.frames <- frame:
		default:
			l.drop(st)
			l.dropped++
			if lograte.Crossed(l.dropped-1, l.dropped) {
				l.srv.cfg.Logger.Warn().Uint64("dropped", l.dropped).Msg("a dashboard page fell behind its stream; dropped")
			}
		}
	}
}

// drop ends a stream: its writer sees its frames closed. l.mu is held.
func (l *live) drop(st *stream) {
	delete(l.streams, st)
	close(st.frames)
	st.conn.Close()
}

func sseFrame(event string, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of numbers and strings: cannot happen
	}
	// encoding/json writes no newline, which would end an SSE data line.
	return append(append([]byte("event: "+event+"\ndata: "), b...), "\n\n"...)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// serveEvents serves GET <base>dashboard/events: the page's stream of
// server-sent events. The connection is hijacked so that the stream is
// bounded and ends with the page: a reader notices the client's close at
// once, and a write the client does not take in time, or a queue of frames
// it has not taken, ends it.
func (l *live) serveEvents(ctx *fasthttp.RequestCtx, _ []string) error {
	if !ctx.IsGet() {
		return errMethod
	}
	if l.count() >= maxStreams {
		ctx.Response.Header.Set("Retry-After", "10")
		return errorf(fasthttp.StatusServiceUnavailable, "too many dashboard streams open")
	}
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(l.serveStream)
	return nil
}

const streamHead = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: text/event-stream; charset=utf-8\r\n" +
	"Cache-Control: no-store\r\n" +
	"X-Content-Type-Options: nosniff\r\n" +
	"X-Accel-Buffering: no\r\n" + // nginx: pass each event on at once
	"Connection: close\r\n\r\n" +
	"retry: 2000\n\n"

func (l *live) serveStream(c net.Conn) {
	st := l.join(c)
	if st == nil {
		c.Close() // full meanwhile, or stopping: the page retries
		return
	}
	defer l.leave(st)
	clientGone := make(chan struct{})
	go func() {
		io.Copy(io.Discard, io.LimitReader(c, streamReadLimit))
		close(clientGone)
	}()
	write := func(b []byte) bool {
		c.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := c.Write(b)
		return err == nil
	}
	if !write([]byte(streamHead)) {
		return
	}
	for {
		select {
		case f, ok := <-st.frames:
			if !ok || !write(f) {
				return
			}
		case <-clientGone:
			return
		}
	}
}

// join registers a stream and has run welcome it; nil when there is no
// room or the server is stopping.
func (l *live) join(c net.Conn) *stream {
	l.mu.Lock()
	if !l.running || len(l.streams) >= maxStreams {
		l.mu.Unlock()
		return nil
	}
	st := &stream{conn: c, frames: make(chan []byte, streamQueue)}
	l.streams[st] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	select {
	case l.joins <- st:
	case <-l.done:
	}
	return st
}

// leave ends a stream that ends by itself (its client went, a write
// failed) and closes its connection.
func (l *live) leave(st *stream) {
	l.mu.Lock()
	if _, ok := l.streams[st]; ok {
		l.drop(st)
	}
	l.mu.Unlock()
	st.conn.Close()
	l.wg.Done()
}
