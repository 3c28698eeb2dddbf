package http

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/kernelgate/kernelgate/actors"
	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
)

// A client that reads about 2,000 messages a second while ipykernel prints
// 60,000 numbered lines (each flushed: a message each) falls behind its
// kernel: it gets every line, once, in order, on its one websocket, at
// default settings (no 1013), its backlog merged into far fewer messages.
// Both framings.
func TestFloodSlowClientGetsEveryLineOnce(t *testing.T) {
	const lines = 60000
	metrics := &actors.Metrics{}
	h := newHarness(t, func(_ *Config, a *actors.Config) { a.Metrics = metrics })
	for _, v1 := range []bool{true, false} {
		name := map[bool]string{true: "v1", false: "legacy"}[v1]
		t.Run(name, func(t *testing.T) {
			id := h.startKernel()
			warm := h.dialWS(id, "warm-"+name, v1) // the kernel's goroutines exist before the check
			warm.reply(warm.execute("1"), 30*time.Second)
			warm.c.Close()
			check := leaktest.Check(t)
			c, err := h.tryDialWS(id, "flood-"+name, v1)
			testkit.NoError(t, err)
			w := &wsClient{t: t, c: c, v1: v1, session: "flood-" + name}
			merged := metrics.MessagesMerged.Load()
			req := w.send(zmq.Shell, "execute_request", map[string]any{
				"code": fmt.Sprintf("for i in range(%d):\n    print(i, flush=True)", lines), "silent": false}, nil)
			pace := time.NewTicker(500 * time.Microsecond) // the client's reading rate
			defer pace.Stop()
			var got strings.Builder // a line may come in two messages ("7", then "\n")
			frames := 0
			c.SetReadDeadline(time.Now().Add(5 * time.Minute))
			for {
				<-pace.C
				typ, data, err := c.ReadMessage()
				testkit.NoError(t, err) // a 1013 or any close fails here
				g, err := w.decodeFrame(typ, data)
				testkit.NoError(t, err)
				if g.msgType == "stream" && g.parent == req.Head().MsgID {
					frames++
					text, _ := g.content["text"].(string)
					got.WriteString(text)
				}
				if g.msgType == "status" && g.parent == req.Head().MsgID && g.content["execution_state"] == "idle" {
					break
				}
			}
			ls := strings.Split(strings.TrimSuffix(got.String(), "\n"), "\n")
			testkit.Equal(t, len(ls), lines)
			for i, l := range ls {
				if l != strconv.Itoa(i) { // each line once, in order
					t.Fatalf("line %d is %q", i, l)
				}
			}
			t.Logf("%s: %d lines in %d messages; %d messages merged", name, lines, frames, metrics.MessagesMerged.Load()-merged)
			testkit.True(t, frames < lines, "no message was merged")
			testkit.Equal(t, metrics.SlowConsumers.Load(), uint64(0))
			c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			c.Close()
			testkit.Eventually(t, 30*time.Second, func() error {
				if m := decode[actors.Model](t, h.expect("GET", "/api/kernels/"+id, "", 200)); m.Connections != 0 {
					return fmt.Errorf("%d connections", m.Connections)
				}
				return nil
			})
			h.client.CloseIdleConnections()
			check()
		})
	}
}
