package actors

import (
	"encoding/json"

	"github.com/kernelgate/kernelgate/zmq"
)

// A client whose replica died mid-cell reconnects to another one, which
// never saw its execute_request: the kernel answers a request on the
// connection it came in on, so the execute_reply died with that replica,
// and the client (JupyterLab marks a cell done at its reply) would wait
// for it forever. Everything else about the request every replica has:
// the kernel broadcasts its execute_input (the execution count), its
// error, if any, and its idle status on iopub, each with the request's
// header as parent. So the replica the client moves to rebuilds the reply
// from those, once the request is idle, for the requests the client sent
// (the parent header's session is the client's, as JupyterLab and
// kernelgate's bench make it) that it has not seen end.

// orphan is a request of a client whose replica died, waiting for its end.
type orphan struct {
	to     sessionNum
	parent []byte // the request's header
	count  int    // from its execute_input
	err    json.RawMessage
}

// adoptOrphans finds session s's execute requests that had not ended by
// seq from (where its writer begins: what the client has not seen):
// those ended since get their reply at once, the others at their idle.
func (k *kernelActor) adoptOrphans(s *session, from uint64) {
	found := map[string]*orphan{}
	var ended []string
	cur, _ := k.output.at(k.output.oldest())
	for e, ok := k.output.next(&cur); ok; e, ok = k.output.next(&cur) {
		if e.ch != zmq.IOPub {
			continue
		}
		p, err := e.m.Parent()
		if err != nil || p.Session != s.id || p.MsgType != "execute_request" {
			continue
		}
		o := found[p.MsgID]
		if o == nil {
			o = &orphan{to: s.num, parent: e.m.ParentHeader}
			found[p.MsgID] = o
		}
		switch {
		case !k.noteOrphan(o, e.m):
		case cur.seq-1 < from:
			delete(found, p.MsgID) // the client saw it end
		default:
			ended = append(ended, p.MsgID)
		}
	}
	if k.orphans == nil {
		k.orphans = map[string]*orphan{}
	}
	for id, o := range found {
		k.orphans[id] = o
	}
	for _, id := range ended {
		k.orphanEnded(id)
	}
}

// noteOrphan records what iopub message m says about orphan o and reports
// whether it is the request's end (idle).
func (k *kernelActor) noteOrphan(o *orphan, m *zmq.Message) bool {
	switch m.MsgType() {
	case "execute_input":
		var c struct {
			ExecutionCount int `json:"execution_count"`
		}
		if m.DecodeContent(&c) == nil {
			o.count = c.ExecutionCount
		}
	case "error":
		o.err = m.Content
	case "status":
		var c struct {
			ExecutionState string `json:"execution_state"`
		}
		return m.DecodeContent(&c) == nil && c.ExecutionState == StateIdle
	}
	return false
}

// watchOrphans follows the kernel's iopub for the orphans' ends.
func (k *kernelActor) watchOrphans(m *zmq.Message) {
	p, err := m.Parent()
	if err != nil {
		return
	}
	if o, ok := k.orphans[p.MsgID]; ok && k.noteOrphan(o, m) {
		k.orphanEnded(p.MsgID)
	}
}

// orphanEnded gives the client of an orphan that has ended its rebuilt
// reply.
func (k *kernelActor) orphanEnded(id string) {
	o := k.orphans[id]
	delete(k.orphans, id)
	if o == nil {
		return
	}
	content := map[string]any{"status": "ok", "execution_count": o.count, "user_expressions": map[string]any{}, "payload": []any{}}
	if o.err != nil {
		var e map[string]any
		if json.Unmarshal(o.err, &e) == nil {
			content = e
			content["status"], content["execution_count"] = "error", o.count
		}
	}
	reply, err := zmq.NewMessage("execute_reply", "kernelgate-"+k.h.id, "kernelgate", o.parent, content)
	if err != nil {
		return
	}
	reply.Metadata = []byte(`{"kernelgate":"rebuilt: the gateway replica that carried the request stopped"}`)
	k.cfg.Metrics.RepliesRebuilt.Add(1)
	k.publish(zmq.Shell, reply, o.to)
}

// forgetOrphans drops the orphans of a session that ended.
func (k *kernelActor) forgetOrphans(s *session) {
	for id, o := range k.orphans {
		if o.to == s.num {
			delete(k.orphans, id)
		}
	}
}
