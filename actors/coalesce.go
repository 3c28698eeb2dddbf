package actors

import (
	"bytes"

	"github.com/kernelgate/kernelgate/zmq"
)

// Merging a flood. A client slower than its kernel is not sent away while
// what it has yet to read can be merged: its writer merges the messages of
// each batch as it encodes them for this connection (the log's entries,
// which other sessions read too, are never changed):
//
//   - consecutive stream messages of the same name, parent and metadata
//     become one, their texts concatenated under the first one's header:
//     the client shows the same text, in far fewer messages;
//   - of several update_display_data for one display_id only the latest is
//     written: each replaces the display's whole content;
//   - every other message (status, execute_input, execute_reply, errors,
//     comm messages, display_data, …) is written as it came, in order: it
//     ends the merging before it.
//
// A merged message carries the first message's msg_id but stands for all
// that it merged: the writer counts it as written up to the last of them
// (acks and resume points are seqs, so they stay exact), and the session
// remembers which msg_id ended where, so that a client coming back with
// ?last_msg_id= a merged message's id gets what followed the last of them
// (see session.merges).

// mergeBehind is how many entries must be waiting for a writer before it
// merges: a client that keeps up gets the messages as the kernel sent them.
const mergeBehind = 64

// Bounds of one merge: the text of one merged stream message, and how many
// displays' updates are held at once.
const (
	maxMergedText  = 1 << 20
	maxHeldUpdates = 16
)

// mergeableType reports whether a writer may merge iopub messages of type t.
func mergeableType(t string) bool { return t == "stream" || t == "update_display_data" }

// queuer is where a coalescer writes: the connection's Socket.
type queuer interface {
	Queue(ch zmq.Channel, m *zmq.Message)
}

// coalescer merges one batch of a writer's messages. It holds messages
// (a run of streams being merged, displays' latest updates) until one that
// cannot join them comes, or the batch ends (flush).
type coalescer struct {
	held []held
	// The run of streams being merged, if held has one: its first message
	// and name, its text so far, how many messages and bytes it merged,
	// and the seq of its last message.
	first   *zmq.Message
	name    []byte
	text    []byte
	n       int
	size    int
	content []byte      // the merged content, encoded
	out     zmq.Message // the merged message

	// Counts since the last take.
	merged, saved uint64
	// marks are the merged messages written since the last take: the
	// msg_id a client sees and the seq of the last message it stands for.
	marks []mergeMark
}

// held is one message the coalescer holds: the run of streams (run), or
// the latest update of a display.
type held struct {
	run       bool
	ch        zmq.Channel
	m         *zmq.Message
	displayID string
	size      int
	last      uint64 // seq of the message this stands for last
}

// mergeMark is a merged message a client was sent: its msg_id (the first
// merged message's) and the seq of the last message it stands for.
type mergeMark struct {
	msgID string
	last  uint64
}

// add takes the next message of the batch, the log's entry e at seq.
func (c *coalescer) add(q queuer, e *logEntry, seq uint64) {
	m, size := e.m, int(e.size)
	if !e.mergeable {
		c.flush(q)
		q.Queue(e.ch, m)
		return
	}
	if m.MsgType() == "stream" {
		name, text, ok := zmq.StreamText(m.Content)
		switch {
		case !ok:
			c.flush(q)
			q.Queue(e.ch, m)
		case c.first != nil && c.joins(e.ch, m, name, text):
			c.text = append(c.text, text...)
			c.n++
			c.size += size
			c.held[c.runAt()].last = seq
		default:
			c.flush(q)
			c.first, c.name, c.n, c.size = m, name, 1, size
			c.text = append(c.text[:0], text...)
			c.held = append(c.held, held{run: true, ch: e.ch, m: m, last: seq})
		}
		return
	}
	id := zmq.DisplayID(m.Content)
	if id == "" {
		c.flush(q)
		q.Queue(e.ch, m)
		return
	}
	for i := range c.held {
		if h := &c.held[i]; !h.run && h.displayID == id {
			c.merged++
			c.saved += uint64(h.size)
			h.m, h.size, h.last = m, size, seq
			return
		}
	}
	if len(c.held) >= maxHeldUpdates {
		c.flush(q)
	}
	c.held = append(c.held, held{ch: e.ch, m: m, displayID: id, size: size, last: seq})
}

// joins reports whether a stream message continues the run: same channel,
// name, parent and metadata, and room for its text.
func (c *coalescer) joins(ch zmq.Channel, m *zmq.Message, name, text []byte) bool {
	h := &c.held[c.runAt()]
	return h.ch == ch && bytes.Equal(name, c.name) && bytes.Equal(m.ParentHeader, c.first.ParentHeader) &&
		bytes.Equal(m.Metadata, c.first.Metadata) && len(c.text)+len(text) <= maxMergedText
}

// runAt is the index of the run in held; only while there is one.
func (c *coalescer) runAt() int {
	for i := range c.held {
		if c.held[i].run {
			return i
		}
	}
	panic("actors: coalescer has no run")
}

// flush queues what the coalescer holds, in order.
func (c *coalescer) flush(q queuer) {
	for i := range c.held {
		h := &c.held[i]
		if !h.run || c.n == 1 {
			q.Queue(h.ch, h.m)
			continue
		}
		c.content = append(c.content[:0], `{"name":"`...)
		c.content = append(c.content, c.name...)
		c.content = append(c.content, `","text":"`...)
		c.content = append(c.content, c.text...)
		c.content = append(c.content, `"}`...)
		c.first.WithContent(&c.out, c.content)
		q.Queue(h.ch, &c.out)
		c.merged += uint64(c.n - 1)
		if saved := c.size - messageSize(&c.out); saved > 0 {
			c.saved += uint64(saved)
		}
		c.marks = append(c.marks, mergeMark{msgID: c.first.Head().MsgID, last: h.last})
	}
	clear(c.held)
	c.held = c.held[:0]
	c.first, c.name = nil, nil
	if cap(c.text) > maxMergedText+64<<10 { // the bound was crossed by one big text
		c.text, c.content = nil, nil
	}
}

// take returns and resets the counts and marks since the last take; the
// marks slice is the caller's until the next take.
func (c *coalescer) take() (merged, saved uint64, marks []mergeMark) {
	merged, saved, marks = c.merged, c.saved, c.marks
	c.merged, c.saved, c.marks = 0, 0, c.marks[:0]
	return merged, saved, marks
}
