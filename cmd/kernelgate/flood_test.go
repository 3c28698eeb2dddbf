package main

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

// flood opens n idle connections to addr from the loopback address from
// (no request, no token), as an attacker exhausting descriptors would, and
// returns how many the gateway still holds open a moment later, and a
// function that closes them all (called at the test's end too).
func flood(t *testing.T, url, from string, n int) (held int, stop func()) {
	t.Helper()
	addr := url[len("http://"):]
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
	var conns []net.Conn
	stop = func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	t.Cleanup(stop)
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			continue // the backlog is full: the attacker gets nothing more
		}
		conns = append(conns, c)
	}
	// Connections refused by a limit are answered and closed at once; the
	// gateway works through its backlog, so look until nothing changes.
	open := conns
	buf := make([]byte, 1)
	for quiet := 0; quiet < 3; {
		var still []net.Conn
		for _, c := range open {
			// A deadline already past fails a read even with data waiting.
			c.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					still = append(still, c)
				}
			}
		}
		if len(still) == len(open) {
			quiet++
		} else {
			quiet = 0
		}
		open = still
	}
	held = len(open)
	return held, stop
}

// TestIdleConnectionFloodAtTheFileLimit floods a gateway whose open-file
// limit is 256 with idle connections from one address. The connection
// limits keep descriptors for the kernels and the other clients: the kernel
// that existed before still runs code on its websocket, another address
// still gets answers, health and metrics answer on their own listener, and
// the gateway lives on.
func TestIdleConnectionFloodAtTheFileLimit(t *testing.T) {
	g := startGateway(t, 256, "--max-conns-per-ip", "64", "--metrics-addr", "127.0.0.1:0")
	_, conn := started(t, g)
	execute(t, conn, "x = 41")

	held, _ := flood(t, g.url, "127.0.0.2", 1000)
	testkit.True(t, held <= 64, "the gateway holds %d connections from one address, over its limit of 64", held)

	testkit.True(t, g.alive(), "the gateway died under the flood:\n%s", g.stderr())
	execute(t, conn, "assert x == 41")
	code, _, err := get(g.url + "/api/kernels")
	testkit.NoError(t, err)
	testkit.Equal(t, code, http.StatusOK)
	code, _, err = get(g.metricsURL + "/healthz")
	testkit.NoError(t, err)
	testkit.Equal(t, code, http.StatusOK)
	testkit.True(t, metric(t, g.metricsURL, "kernelgate_http_connections_open") >= float64(held), "open connections not counted")
}

// TestFloodBeyondTheFileLimitIsSurvived lifts the connection limits so that
// a flood exhausts the gateway's descriptors: accept fails with EMFILE,
// which the gateway must retry rather than treat as the end of its
// listener. Once the flood is gone, everything works again, the kernel that
// existed before included.
func TestFloodBeyondTheFileLimitIsSurvived(t *testing.T) {
	g := startGateway(t, 256, "--max-conns", "100000", "--max-conns-per-ip", "0")
	_, conn := started(t, g)
	execute(t, conn, "x = 41")

	held, stop := flood(t, g.url, "127.0.0.2", 600)
	t.Logf("the flood holds %d connections", held)
	testkit.True(t, g.alive(), "the gateway died under the flood:\n%s", g.stderr())
	execute(t, conn, "assert x == 41")
	stop()

	testkit.Eventually(t, 30*time.Second, func() error {
		_, _, err := get(g.url + "/healthz")
		return err
	})
	testkit.True(t, metric(t, g.url, "kernelgate_http_accept_retries_total") > 0, "accept never failed: the flood did not reach the limit")
	_, again := started(t, g)
	execute(t, again, "print('a new kernel after the flood')")
	execute(t, conn, "assert x == 41")
	testkit.True(t, g.alive(), "the gateway died after the flood:\n%s", g.stderr())
}
