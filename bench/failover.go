package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Replica is one replica of the group behind the target's balancer: its
// own URL (to ask which replica carries a websocket) and its process (to
// kill it: the bench runs on the replicas' host).
type Replica struct {
	URL string
	PID int
}

// runFailover: SIGKILL of the replica that carries two clients'
// websockets, one in the middle of a streaming cell, the other idle. Both
// reconnect through the balancer with their session (and the last message
// they had) as JupyterLab does. It measures how long the streaming client
// goes without output ("resume": from the kill to its first message on
// the new connection), what it lost or got twice (exact with the synthetic
// kernel), and how long until the idle client runs code again
// ("recover": from the kill to the reply of a cell it sends once it is
// back).
func runFailover(ctx context.Context, r *runner, res *Result) error {
	if len(r.opts.Replicas) < 2 {
		return res.fail(r, errors.New("failover: needs the replicas behind --url (--replicas URL=PID,…), at least two"))
	}
	// The cell streams for about 4 s: the kill comes a quarter in.
	n := 200
	code := fmt.Sprintf("import time\nfor i in range(%d):\n    print(%q, flush=True)\n    time.sleep(0.02)", n, strings.Repeat("x", 63))
	exact := false
	if r.language == "synthetic" {
		const rounds = 80
		n, code, exact = rounds*100, strings.Repeat("emit 100 64\nsleep 0.05\n", rounds), true
	}
	res.Params["messages"], res.Params["replicas"] = n, len(r.opts.Replicas)
	r.progress.Begin("failover", 1)
	defer r.progress.Add(1)

	streamID, streaming, err := r.open(ctx)
	if err != nil {
		return res.fail(r, err)
	}
	defer r.close(streamID, streaming, res)
	carrier, err := r.carrier(ctx, streamID)
	if err != nil {
		return res.fail(r, err)
	}
	idleID, idle, err := r.openOn(ctx, carrier)
	if err != nil {
		return res.fail(r, err)
	}
	defer r.close(idleID, idle, res)

	octx, cancel := r.opCtx(ctx)
	defer cancel()
	before := streaming.Streams()
	cell := make(chan error, 1)
	go func() { _, err := streaming.Execute(octx, code); cell <- err }()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for streaming.Streams()-before < uint64(n/4) {
		select {
		case <-tick.C:
		case err := <-cell:
			return res.fail(r, fmt.Errorf("failover: the cell ended before the kill: %v", err))
		case <-octx.Done():
			return res.fail(r, fmt.Errorf("failover: the cell does not stream: %w", octx.Err()))
		}
	}
	reconnects := streaming.Reconnects()
	idleReconnects := idle.Reconnects()
	if err := syscall.Kill(carrier.PID, syscall.SIGKILL); err != nil {
		return res.fail(r, fmt.Errorf("failover: killing replica %s: %w", carrier.URL, err))
	}
	killed := time.Now()

	// The idle client runs a cell as soon as it is back (what it sends
	// before is lost with the dead connection).
	recovered := make(chan time.Duration, 1)
	go func() {
		poll := time.NewTicker(time.Millisecond)
		defer poll.Stop()
		for octx.Err() == nil {
			if idle.Reconnects() == idleReconnects {
				select {
				case <-poll.C:
				case <-octx.Done():
				}
				continue
			}
			try, cancel := context.WithTimeout(octx, 2*time.Second)
			_, err := idle.Execute(try, r.rttCode())
			cancel()
			if err == nil {
				recovered <- time.Since(killed)
				return
			}
		}
		recovered <- 0
	}()
	var resumed time.Duration
	var atReconnect uint64
	for resumed == 0 {
		if streaming.Reconnects() > reconnects {
			if atReconnect == 0 {
				atReconnect = streaming.Streams()
			} else if streaming.Streams() > atReconnect {
				resumed = time.Since(killed)
			}
		}
		select {
		case <-tick.C:
		case err := <-cell:
			cell <- err
			resumed = time.Since(killed) // ended without a reconnect, or right after
		case <-octx.Done():
			return res.fail(r, fmt.Errorf("failover: the streaming client never got output again: %w", octx.Err()))
		}
	}
	if err := <-cell; err != nil {
		return res.fail(r, fmt.Errorf("failover: stream cell: %w", err))
	}
	rec := <-recovered
	if rec == 0 {
		return res.fail(r, fmt.Errorf("failover: the idle client never ran code again: %w", octx.Err()))
	}
	got := int64(streaming.Streams() - before)
	res.Latency["resume"], res.Latency["recover"] = r.single(resumed), r.single(rec)
	res.Counts["received"], res.Counts["reconnects"] = got, int64(streaming.Reconnects()-reconnects)
	if exact {
		res.Counts["emitted"] = int64(n)
		res.Counts["lost"], res.Counts["duplicated"] = max(int64(n)-got, 0), max(got-int64(n), 0)
	}
	res.Ops = 1
	return nil
}

// single is a distribution of one measurement.
func (r *runner) single(d time.Duration) *Summary {
	l := newLatencies(r.start)
	l.Add(d)
	return l.Summarize()
}

// carrier finds the replica that carries kernel id's websocket: the one
// whose model counts a connection.
func (r *runner) carrier(ctx context.Context, id string) (Replica, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, rep := range r.opts.Replicas {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, rep.URL+"/api/kernels/"+url.PathEscape(id), nil)
			if err != nil {
				return Replica{}, err
			}
			if r.opts.Token != "" {
				req.Header.Set("Authorization", "token "+r.opts.Token)
			}
			resp, err := client.Do(req)
			if err != nil {
				continue
			}
			var m struct{ Connections int }
			err = json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			if err == nil && m.Connections > 0 {
				return rep, nil
			}
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
		}
	}
	return Replica{}, fmt.Errorf("failover: no replica says it carries kernel %s's websocket", id)
}

// openOn starts a kernel and connects to it through the balancer until
// the connection lands on replica want (round robin gets there in a few).
func (r *runner) openOn(ctx context.Context, want Replica) (string, Conn, error) {
	id, c, err := r.open(ctx)
	if err != nil {
		return "", nil, err
	}
	for range 8 {
		if got, err := r.carrier(ctx, id); err == nil && got == want {
			return id, c, nil
		}
		c.Close()
		octx, cancel := r.opCtx(ctx)
		c, err = r.backend.Connect(octx, id)
		if err == nil {
			if err = c.KernelInfo(octx); err != nil {
				c.Close()
			}
		}
		cancel()
		if err != nil {
			r.stop(id)
			return "", nil, err
		}
	}
	c.Close()
	r.stop(id)
	return "", nil, fmt.Errorf("failover: no connection through the balancer reached %s", want.URL)
}
