// Package framing encodes and decodes Jupyter kernel messages as websocket
// frames, in both protocols: v1.kernel.websocket.jupyter.org (binary offset
// table) and the legacy JSON framing. The gateway serves with it and the
// bench harness speaks to gateways with it; it is direction-neutral (which
// channels a peer may send on is the caller's rule).
package framing

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/kernelgate/kernelgate/zmq"
)

// SubprotocolV1 is the binary kernel websocket protocol; without it a
// connection speaks the legacy JSON protocol.
const SubprotocolV1 = "v1.kernel.websocket.jupyter.org"

// ErrFrame reports a websocket frame that cannot be decoded.
var ErrFrame = errors.New("malformed websocket frame")

// ErrChannel reports a frame for a channel clients may not use.
var ErrChannel = errors.New("unknown channel")

// Codec encodes kernel messages for one connection and decodes what the
// peer sends. Encode appends to dst and returns it, and whether the frame
// is binary.
type Codec interface {
	Encode(dst []byte, ch zmq.Channel, m *zmq.Message) (out []byte, binary bool)
	Decode(data []byte, text bool) (zmq.Channel, *zmq.Message, error)
}

// For returns the codec of a connection that negotiated subprotocol.
func For(subprotocol string) Codec {
	if subprotocol == SubprotocolV1 {
		return V1{}
	}
	return Legacy{}
}

// V1 is the v1.kernel.websocket.jupyter.org framing: one binary frame per
// message, u64le count N, N u64le offsets, then channel, the four JSON parts
// and the buffers, each running to the next offset (the last offset is the
// frame's end).
type V1 struct{}

func (V1) Encode(dst []byte, ch zmq.Channel, m *zmq.Message) ([]byte, bool) {
	name := ch.String()
	n := 6 + len(m.Buffers)
	off := uint64(8 * (n + 1))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(n))
	parts := [][]byte{m.Header, m.ParentHeader, m.Metadata, m.Content}
	off += uint64(len(name))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(8*(n+1)))
	dst = binary.LittleEndian.AppendUint64(dst, off)
	for _, p := range parts {
		off += uint64(len(p))
		dst = binary.LittleEndian.AppendUint64(dst, off)
	}
	for _, b := range m.Buffers {
		off += uint64(len(b))
		dst = binary.LittleEndian.AppendUint64(dst, off)
	}
	// n offsets written: channel start, channel end, 4 part ends, buffer ends
	// = 2 + 4 + len(buffers) = n.
	dst = append(dst, name...)
	for _, p := range parts {
		dst = append(dst, p...)
	}
	for _, b := range m.Buffers {
		dst = append(dst, b...)
	}
	return dst, true
}

func (V1) Decode(data []byte, text bool) (zmq.Channel, *zmq.Message, error) {
	if text {
		return 0, nil, fmt.Errorf("%w: v1 frames are binary", ErrFrame)
	}
	if len(data) < 8 {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrFrame, len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n < 6 || n > uint64(len(data))/8 {
		return 0, nil, fmt.Errorf("%w: %d offsets", ErrFrame, n)
	}
	offs := make([]uint64, n)
	prev := 8 * (n + 1)
	for i := range offs {
		offs[i] = binary.LittleEndian.Uint64(data[8*(i+1):])
		if offs[i] < prev || offs[i] > uint64(len(data)) {
			return 0, nil, fmt.Errorf("%w: offset %d out of range", ErrFrame, i)
		}
		prev = offs[i]
	}
	if offs[0] != 8*(n+1) || offs[n-1] != uint64(len(data)) {
		return 0, nil, fmt.Errorf("%w: offsets do not span the frame", ErrFrame)
	}
	part := func(i int) []byte { return data[offs[i]:offs[i+1]] }
	ch, ok := zmq.ParseChannel(string(part(0)))
	if !ok {
		return 0, nil, fmt.Errorf("%w: %q", ErrChannel, part(0))
	}
	var buffers [][]byte
	for i := 5; i < int(n)-1; i++ {
		buffers = append(buffers, part(i))
	}
	m, err := zmq.FromParts(part(1), part(2), part(3), part(4), buffers)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrFrame, err)
	}
	return ch, m, nil
}

// Legacy is the JSON framing: a text frame with the message as one object
// (with EG's top-level msg_id, msg_type and a channel key), or, for a
// message with buffers, a binary frame: u32be count, u32be offsets, the JSON
// object, then the buffers.
type Legacy struct{}

func (Legacy) Encode(dst []byte, ch zmq.Channel, m *zmq.Message) ([]byte, bool) {
	nb := len(m.Buffers)
	start := len(dst)
	if nb > 0 {
		// Offsets are filled in once the JSON's length is known.
		dst = append(dst, make([]byte, 4*(nb+2))...)
	}
	h := m.Head()
	dst = append(dst, `{"header":`...)
	dst = append(dst, m.Header...)
	dst = append(dst, `,"msg_id":`...)
	dst = appendJSONString(dst, h.MsgID)
	dst = append(dst, `,"msg_type":`...)
	dst = appendJSONString(dst, h.MsgType)
	dst = append(dst, `,"parent_header":`...)
	dst = append(dst, m.ParentHeader...)
	dst = append(dst, `,"metadata":`...)
	dst = append(dst, m.Metadata...)
	dst = append(dst, `,"content":`...)
	dst = append(dst, m.Content...)
	if nb == 0 {
		dst = append(dst, `,"buffers":[]`...)
	}
	dst = append(dst, `,"channel":"`...)
	dst = append(dst, ch.String()...)
	dst = append(dst, `"}`...)
	if nb == 0 {
		return dst, false
	}
	hdr := dst[start:]
	binary.BigEndian.PutUint32(hdr, uint32(nb+1))
	off := uint32(4 * (nb + 2))
	binary.BigEndian.PutUint32(hdr[4:], off)
	off = uint32(len(dst) - start)
	for i, b := range m.Buffers {
		binary.BigEndian.PutUint32(hdr[4*(i+2):], off)
		dst = append(dst, b...)
		off += uint32(len(b))
	}
	return dst, true
}

// legacyMessage is a legacy frame's JSON; the parts stay raw, the top-level
// msg_id and msg_type the gateway adds are ignored. Buffers travel in the
// binary framing; the JSON's own "buffers" is ignored whatever it holds
// (clients send it missing, null, [] or, as Enterprise Gateway's own client
// does, {}), and a missing or null parent_header, metadata or content is
// {} — what Jupyter Server accepts.
type legacyMessage struct {
	Header       json.RawMessage `json:"header"`
	ParentHeader json.RawMessage `json:"parent_header"`
	Metadata     json.RawMessage `json:"metadata"`
	Content      json.RawMessage `json:"content"`
	Channel      *string         `json:"channel"`
}

// Decode accepts a JSON text frame, or the binary framing for messages with
// buffers — also inside a text frame, which is how Jupyter Server's gateway
// client relays a browser's binary frames.
func (Legacy) Decode(data []byte, text bool) (zmq.Channel, *zmq.Message, error) {
	jsonPart, buffers := data, [][]byte(nil)
	if !text || !looksLikeJSON(data) {
		var err error
		if jsonPart, buffers, err = SplitLegacyBinary(data); err != nil {
			return 0, nil, err
		}
	}
	var lm legacyMessage
	if err := json.Unmarshal(jsonPart, &lm); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrFrame, err)
	}
	ch := zmq.Shell // a missing channel means shell, as in Jupyter Server
	if lm.Channel != nil {
		var ok bool
		if ch, ok = zmq.ParseChannel(*lm.Channel); !ok {
			return 0, nil, fmt.Errorf("%w: %q", ErrChannel, *lm.Channel)
		}
	}
	m, err := zmq.FromParts(lm.Header, lm.ParentHeader, lm.Metadata, lm.Content, buffers)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrFrame, err)
	}
	return ch, m, nil
}

func looksLikeJSON(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{' && utf8.Valid(b)
}

// SplitLegacyBinary splits the legacy binary framing into the JSON part and
// the buffers.
func SplitLegacyBinary(data []byte) ([]byte, [][]byte, error) {
	if len(data) < 8 {
		return nil, nil, fmt.Errorf("%w: %d bytes", ErrFrame, len(data))
	}
	n := binary.BigEndian.Uint32(data)
	if n < 1 || uint64(n) > uint64(len(data))/4-1 {
		return nil, nil, fmt.Errorf("%w: %d parts", ErrFrame, n)
	}
	offs := make([]uint32, n+1)
	for i := uint32(0); i < n; i++ {
		offs[i] = binary.BigEndian.Uint32(data[4*(i+1):])
	}
	offs[n] = uint32(len(data))
	if offs[0] != 4*(n+1) {
		return nil, nil, fmt.Errorf("%w: first offset %d", ErrFrame, offs[0])
	}
	for i := uint32(1); i <= n; i++ {
		if offs[i] < offs[i-1] || offs[i] > uint32(len(data)) {
			return nil, nil, fmt.Errorf("%w: offset %d out of range", ErrFrame, i)
		}
	}
	var buffers [][]byte
	for i := uint32(1); i < n; i++ {
		buffers = append(buffers, data[offs[i]:offs[i+1]])
	}
	return data[offs[0]:offs[1]], buffers, nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
