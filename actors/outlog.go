package actors

import (
	"math"
	"sync/atomic"

	"github.com/kernelgate/kernelgate/zmq"
)

// outLog is a kernel's recent output to its clients, in the order they are
// to see it: one log per kernel, shared by every session, so a thousand
// detached sessions cost a thousand positions, not a thousand copies.
//
// The kernel actor is its only writer. Websocket writers read it from their
// own goroutines without locks: an entry is written once, before head moves
// past it (an atomic store, so a reader that loads head sees the entries
// below it), and never changed; entries live in chunks that are never
// reused, so a reader holding a chunk keeps reading it safely after the log
// has let it go. The log keeps the last entries within its bounds, and
// fewer when no session needs them (see trim).
type outLog struct {
	head atomic.Uint64 // seq of the next entry; readable entries are below it
	tail atomic.Pointer[logChunk]

	// Owned by the writer.
	cur      *logChunk
	last     tally     // of the newest entry
	low      uint64    // oldest entry kept
	lowc     *logChunk // the chunk of low
	bytes    int64     // bytes of the entries from low to head
	maxCount int
	maxBytes int64
	// keep is the oldest entry some session still needed when last asked
	// (see trim): entries from it on that the bounds drop are lost to
	// someone.
	keep uint64
	// pin is the oldest entry a connected client has not confirmed, when
	// last asked: the bounds keep it and what follows, so that a client
	// behind a flood its writer merges loses nothing if its connection
	// breaks (its writer's own backlog guard bounds how far that goes).
	pin uint64
}

// A log's chunks grow from firstChunkSize entries to logChunkSize: one
// allocation per that many messages once a kernel is busy, while each of
// thousands of idle kernels keeps a small first chunk (at 256 it was 14 KB a
// kernel).
const (
	firstChunkSize = 16
	logChunkSize   = 256
)

type logChunk struct {
	base    uint64 // seq of entries[0]
	entries []logEntry
	next    atomic.Pointer[logChunk]
}

func newLogChunk(base uint64, size int) *logChunk {
	return &logChunk{base: base, entries: make([]logEntry, size)}
}

// end is the seq just past the chunk's entries.
func (c *logChunk) end() uint64 { return c.base + uint64(len(c.entries)) }

// logEntry is one message for clients.
type logEntry struct {
	ch zmq.Channel
	// mergeable: a writer whose client has fallen behind may merge the
	// message with others (see coalescer).
	mergeable bool
	// to is the session the message is for (a reply to its request), or
	// 0 for every session.
	to   sessionNum
	size int32
	m    *zmq.Message
	// at is the log's tally up to and including this entry: what lies
	// between two entries is the difference of theirs.
	at tally
}

// tally counts a log from its beginning. A writer's backlog is the
// difference between the newest entry's tally and that of the entry it
// has reached.
type tally struct {
	seq uint64
	// bytes of every entry.
	bytes uint64
	// hard counts the entries no writer merges with others.
	hard uint64
	// merged is bytes as a writer that merges everything it can would
	// write them: a mergeable message costs its content (the text it adds
	// to a merged one), any other all of its parts.
	merged uint64
}

func (t tally) minus(o tally) tally {
	return tally{seq: t.seq - o.seq, bytes: t.bytes - o.bytes, hard: t.hard - o.hard, merged: t.merged - o.merged}
}

// sessionNum numbers a kernel's sessions for log entries; 0 is everyone.
type sessionNum uint32

// newOutLog returns an empty log whose first entry will have seq 1, keeping
// at most maxCount entries and maxBytes bytes.
func newOutLog(maxCount int, maxBytes int64) *outLog {
	l := &outLog{maxCount: maxCount, maxBytes: maxBytes, low: 1, pin: math.MaxUint64}
	l.cur = newLogChunk(1, firstChunkSize)
	l.lowc = l.cur
	l.tail.Store(l.cur)
	l.head.Store(1)
	return l
}

// append adds a message and returns how many entries some session still
// needed that the bounds dropped to make room.
func (l *outLog) append(ch zmq.Channel, m *zmq.Message, to sessionNum) (lost uint64) {
	seq := l.head.Load()
	if seq == l.cur.end() {
		next := newLogChunk(seq, min(2*len(l.cur.entries), logChunkSize))
		l.cur.next.Store(next)
		l.cur = next
	}
	size := messageSize(m)
	mergeable := ch == zmq.IOPub && mergeableType(m.MsgType())
	t := l.last
	t.seq, t.bytes = seq, t.bytes+uint64(size)
	if mergeable {
		t.merged += uint64(len(m.Content))
	} else {
		t.hard++
		t.merged += uint64(size)
	}
	l.cur.entries[seq-l.cur.base] = logEntry{ch: ch, mergeable: mergeable, m: m, to: to, size: int32(size), at: t}
	l.last = t
	l.head.Store(seq + 1)
	l.bytes += int64(size)
	return l.bound()
}

// bound drops the oldest entries beyond the count and byte bounds and
// returns how many of them some session still needed.
func (l *outLog) bound() (lost uint64) {
	head := l.head.Load()
	for l.low < head && l.low < l.pin && (int(head-l.low) > l.maxCount || l.bytes > l.maxBytes) {
		if l.low >= l.keep {
			lost++
		}
		l.drop()
	}
	l.release()
	return lost
}

// trim drops the entries below keep that the bounds still allowed: no
// session needs them any more. Entries from pin on are kept beyond the
// bounds (see outLog.pin).
func (l *outLog) trim(keep, pin uint64) {
	keep = min(keep, l.head.Load())
	l.keep, l.pin = keep, pin
	for l.low < keep {
		l.drop()
	}
	l.release()
}

// drop lets the oldest kept entry go.
func (l *outLog) drop() {
	if l.low == l.lowc.end() {
		l.lowc = l.lowc.next.Load()
	}
	l.bytes -= int64(l.lowc.entries[l.low-l.lowc.base].size)
	l.low++
}

// release lets go of the chunks wholly below low.
func (l *outLog) release() {
	for t := l.tail.Load(); t != l.cur && t.end() <= l.low; t = l.tail.Load() {
		l.tail.Store(t.next.Load())
	}
}

// oldest returns the seq of the oldest entry a reader can still find from
// the log itself (a reader with a cursor below it has lost messages).
func (l *outLog) oldest() uint64 { return l.tail.Load().base }

// cursor is a reader's position in the log. Its zero value is not usable:
// make one with at.
type cursor struct {
	c   *logChunk
	seq uint64 // next entry to read
}

// at returns a cursor on seq, or on the oldest entry still kept when seq is
// older; lost is how many entries were skipped.
func (l *outLog) at(seq uint64) (cur cursor, lost uint64) {
	c := l.tail.Load()
	if seq < c.base {
		lost, seq = c.base-seq, c.base
	}
	if head := l.head.Load(); seq > head {
		seq = head
	}
	for seq >= c.end() {
		n := c.next.Load()
		if n == nil {
			break
		}
		c = n
	}
	return cursor{c: c, seq: seq}, lost
}

// next returns the entry at the cursor and moves past it, or false when the
// reader has caught up with the log.
func (l *outLog) next(cur *cursor) (*logEntry, bool) {
	if cur.seq >= l.head.Load() {
		return nil, false
	}
	if cur.seq == cur.c.end() {
		cur.c = cur.c.next.Load()
	}
	e := &cur.c.entries[cur.seq-cur.c.base]
	cur.seq++
	return e, true
}

// before is the tally of the log just before the entry at cur: the
// writer's; the entry, kept or let go, is still in the chunk cur holds.
func (l *outLog) before(cur cursor) tally {
	if cur.seq >= l.head.Load() {
		return l.last
	}
	c := cur.c
	if cur.seq == c.end() {
		c = c.next.Load() // exists: its first entry is below head
	}
	e := &c.entries[cur.seq-c.base]
	t := e.at
	t.seq--
	t.bytes -= uint64(e.size)
	if e.mergeable {
		t.merged -= uint64(len(e.m.Content))
	} else {
		t.hard--
		t.merged -= uint64(e.size)
	}
	return t
}

// behind returns how many entries and bytes a reader at cur has yet to
// read. The writer's view.
func (l *outLog) behind(cur cursor) (entries uint64, bytes uint64) {
	d := l.last.minus(l.before(cur))
	return d.seq, d.bytes
}

// find returns the seq of the newest kept entry below before, for session
// s or for everyone, whose msg_id is msgID; 0 when there is none.
func (l *outLog) find(msgID string, s sessionNum, before uint64) uint64 {
	found := uint64(0)
	cur, _ := l.at(0)
	for e, ok := l.next(&cur); ok && cur.seq <= before; e, ok = l.next(&cur) {
		if (e.to == 0 || e.to == s) && e.m.Head().MsgID == msgID {
			found = cur.seq - 1
		}
	}
	return found
}

// messageSize is what a message costs to keep and to write, in bytes.
func messageSize(m *zmq.Message) int {
	n := len(m.Header) + len(m.ParentHeader) + len(m.Metadata) + len(m.Content)
	for _, b := range m.Buffers {
		n += len(b)
	}
	return n
}
