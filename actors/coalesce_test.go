package actors

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
)

// recorder is a queuer that keeps what was queued, decoded.
type recorder struct{ out []queued }

type queued struct {
	ch      zmq.Channel
	msgType string
	msgID   string
	content map[string]any
}

func (r *recorder) Queue(ch zmq.Channel, m *zmq.Message) {
	var c map[string]any
	json.Unmarshal(m.Content, &c)
	r.out = append(r.out, queued{ch: ch, msgType: m.MsgType(), msgID: m.Head().MsgID, content: c})
}

// in is one message of a merge test: a type and content, on iopub unless
// shell is set, a child of parent ("a" unless set).
type in struct {
	msgType string
	content map[string]any
	parent  string
	shell   bool
}

func stream(name, text string) in {
	return in{msgType: "stream", content: map[string]any{"name": name, "text": text}}
}

func update(id string, v int) in {
	return in{msgType: "update_display_data", content: map[string]any{"data": map[string]any{"text/plain": v},
		"metadata": map[string]any{}, "transient": map[string]any{"display_id": id}}}
}

func other(msgType string) in {
	return in{msgType: msgType, content: map[string]any{"x": 1}}
}

// out is what a test expects queued: a type and a short form of the
// content (a stream's text, an update's value, else "").
type out struct{ msgType, what string }

func short(q queued) out {
	switch q.msgType {
	case "stream":
		return out{q.msgType, q.content["name"].(string) + ":" + q.content["text"].(string)}
	case "update_display_data":
		if q.content["transient"] == nil {
			return out{q.msgType, ""}
		}
		id := q.content["transient"].(map[string]any)["display_id"].(string)
		v := q.content["data"].(map[string]any)["text/plain"].(float64)
		return out{q.msgType, id + "=" + strings.Repeat("|", int(v))}
	}
	return out{q.msgType, ""}
}

// The merge rules, one batch each.
func TestCoalescerMergeRules(t *testing.T) {
	for _, tt := range []struct {
		name   string
		in     []in
		want   []out
		merged uint64
	}{
		{"streams of one name and parent become one",
			[]in{stream("stdout", "a\n"), stream("stdout", "b\n"), stream("stdout", "c\n")},
			[]out{{"stream", "stdout:a\nb\nc\n"}}, 2},
		{"a lone stream is as it came",
			[]in{stream("stdout", "a\n")},
			[]out{{"stream", "stdout:a\n"}}, 0},
		{"stdout and stderr keep their order",
			[]in{stream("stdout", "a\n"), stream("stderr", "b\n"), stream("stdout", "c\n"), stream("stdout", "d\n")},
			[]out{{"stream", "stdout:a\n"}, {"stream", "stderr:b\n"}, {"stream", "stdout:c\nd\n"}}, 1},
		{"another parent ends the run",
			[]in{stream("stdout", "a\n"), {msgType: "stream", content: map[string]any{"name": "stdout", "text": "b\n"}, parent: "b"}},
			[]out{{"stream", "stdout:a\n"}, {"stream", "stdout:b\n"}}, 0},
		{"status is never merged or moved",
			[]in{stream("stdout", "a\n"), other("status"), stream("stdout", "b\n"), stream("stdout", "c\n")},
			[]out{{"stream", "stdout:a\n"}, {"status", ""}, {"stream", "stdout:b\nc\n"}}, 1},
		{"execute_input, error, display_data and comm messages end merging",
			[]in{stream("stdout", "a\n"), other("execute_input"), stream("stdout", "b\n"), other("error"),
				update("d", 1), other("display_data"), update("d", 2), other("comm_msg"), update("d", 3)},
			[]out{{"stream", "stdout:a\n"}, {"execute_input", ""}, {"stream", "stdout:b\n"}, {"error", ""},
				{"update_display_data", "d=|"}, {"display_data", ""}, {"update_display_data", "d=||"}, {"comm_msg", ""},
				{"update_display_data", "d=|||"}}, 0},
		{"a display keeps its latest update",
			[]in{update("d", 1), update("d", 2), update("d", 3)},
			[]out{{"update_display_data", "d=|||"}}, 2},
		{"updates of several displays, streams between",
			[]in{update("p", 1), stream("stdout", "a\n"), update("q", 1), update("p", 2), stream("stdout", "b\n")},
			[]out{{"update_display_data", "p=|"}, {"stream", "stdout:a\nb\n"}, {"update_display_data", "q=|"}, {"update_display_data", "p=||"}}, 1},
		{"a stream with other keys is not merged",
			[]in{stream("stdout", "a\n"), {msgType: "stream", content: map[string]any{"name": "stdout", "text": "b\n", "extra": true}}, stream("stdout", "c\n")},
			[]out{{"stream", "stdout:a\n"}, {"stream", "stdout:b\n"}, {"stream", "stdout:c\n"}}, 0},
		{"an update without a display_id is not merged",
			[]in{{msgType: "update_display_data", content: map[string]any{"data": map[string]any{}}}, update("d", 1)},
			[]out{{"update_display_data", ""}, {"update_display_data", "d=|"}}, 0},
		{"messages on shell are never merged",
			[]in{stream("stdout", "a\n"), {msgType: "execute_reply", content: map[string]any{"status": "ok"}, shell: true}, stream("stdout", "b\n")},
			[]out{{"stream", "stdout:a\n"}, {"execute_reply", ""}, {"stream", "stdout:b\n"}}, 0},
		{"escapes and unicode survive",
			[]in{stream("stdout", "\"é\"\t"), stream("stdout", "\\n\u2028\n")},
			[]out{{"stream", "stdout:\"é\"\t\\n\u2028\n"}}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newOutLog(1000, 1<<30)
			for _, m := range tt.in {
				parent := []byte(`{"msg_id":"a"}`)
				if m.parent != "" {
					parent = []byte(`{"msg_id":"` + m.parent + `"}`)
				}
				msg, err := zmq.NewMessage(m.msgType, "k", "u", parent, m.content)
				testkit.NoError(t, err)
				ch := zmq.IOPub
				if m.shell {
					ch = zmq.Shell
				}
				l.append(ch, msg, 0)
			}
			c, r := coalesceLog(l)
			var got []out
			for _, q := range r.out {
				got = append(got, short(q))
			}
			testkit.Equal(t, len(got), len(tt.want))
			for i := range got {
				testkit.Equal(t, got[i], tt.want[i])
			}
			merged, saved, marks := c.take()
			testkit.Equal(t, merged, tt.merged)
			testkit.True(t, (merged > 0) == (saved > 0), "merged %d messages, saved %d bytes", merged, saved)
			for _, mk := range marks {
				testkit.True(t, mk.last > 0 && mk.msgID != "", "mark %+v", mk)
			}
		})
	}
}

// A merged message carries its first message's header, and its mark says
// which message it stands for last.
func TestCoalescerKeepsTheFirstHeader(t *testing.T) {
	l := newOutLog(1000, 1<<30)
	var ids []string
	for _, text := range []string{"a\n", "b\n", "c\n"} {
		m, err := zmq.NewMessage("stream", "k", "u", []byte(`{"msg_id":"p"}`), map[string]string{"name": "stdout", "text": text})
		testkit.NoError(t, err)
		ids = append(ids, m.Head().MsgID)
		l.append(zmq.IOPub, m, 0)
	}
	c, r := coalesceLog(l)
	testkit.Equal(t, len(r.out), 1)
	testkit.Equal(t, r.out[0].msgID, ids[0])
	_, _, marks := c.take()
	testkit.Equal(t, len(marks), 1)
	testkit.Equal(t, marks[0], mergeMark{msgID: ids[0], last: 3})
}

// The merged text of one message is bounded: a longer run is cut in two.
func TestCoalescerBoundsAMergedText(t *testing.T) {
	l := newOutLog(1000, 1<<30)
	line := strings.Repeat("x", 64<<10-1) + "\n"
	for range 20 {
		m, err := zmq.NewMessage("stream", "k", "u", nil, map[string]string{"name": "stdout", "text": line})
		testkit.NoError(t, err)
		l.append(zmq.IOPub, m, 0)
	}
	_, r := coalesceLog(l)
	testkit.Equal(t, len(r.out), 2)
	total := 0
	for _, q := range r.out {
		text := q.content["text"].(string)
		testkit.True(t, len(text) <= maxMergedText, "a merged text of %d bytes", len(text))
		total += len(text)
	}
	testkit.Equal(t, total, 20*len(line))
}

// coalesceLog runs the whole of l through a coalescer, as a writer that has
// fallen behind does, and returns it and what it wrote.
func coalesceLog(l *outLog) (*coalescer, *recorder) {
	var c coalescer
	var r recorder
	cur, _ := l.at(1)
	for e, ok := l.next(&cur); ok; e, ok = l.next(&cur) {
		c.add(&r, e, cur.seq-1)
	}
	c.flush(&r)
	return &c, &r
}
