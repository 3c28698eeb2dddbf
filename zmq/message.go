package zmq

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ProtocolVersion is the Jupyter messaging protocol version this package
// writes into the headers of messages it builds.
const ProtocolVersion = "5.3"

// Message is one Jupyter message. The four JSON parts are kept as the raw
// bytes that came off the wire so that a gateway can forward them without
// re-encoding; only the header fields that routing needs are decoded.
type Message struct {
	// Identities is the routing prefix in front of the delimiter: ROUTER
	// identities on shell/control/stdin, the topic on iopub.
	Identities [][]byte

	Header       []byte
	ParentHeader []byte
	Metadata     []byte
	Content      []byte
	Buffers      [][]byte

	// hdr holds the decoded routing fields of Header.
	hdr Header
	// ids backs Identities when there is one (an iopub topic, a ROUTER's
	// identity): no allocation of its own for the usual case.
	ids [1][]byte
}

// Header holds the header fields routing and bookkeeping need. Other fields
// stay in the raw Header bytes.
type Header struct {
	MsgID    string     `json:"msg_id"`
	MsgType  string     `json:"msg_type"`
	Session  string     `json:"session"`
	Username string     `json:"username"`
	Date     flexString `json:"date"`
	Version  string     `json:"version"`
}

// flexString accepts a JSON string or number: some clients send the header
// date as a float timestamp.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	*f = flexString(b)
	return nil
}

// ErrBadHeader reports a header frame that is not a JSON object.
var ErrBadHeader = errors.New("zmq: header is not a JSON object")

// decodeHeader fills m.hdr from m.Header.
func (m *Message) decodeHeader() error {
	if len(m.Header) == 0 || m.Header[0] != '{' {
		return ErrBadHeader
	}
	m.hdr = Header{}
	return scanHeader(m.Header, &m.hdr)
}

// Head returns the decoded routing fields of the header.
func (m *Message) Head() Header { return m.hdr }

// MsgType is shorthand for Head().MsgType.
func (m *Message) MsgType() string { return m.hdr.MsgType }

// Parent decodes the routing fields of the parent header. An empty parent
// header ({}) gives a zero Header.
func (m *Message) Parent() (Header, error) {
	var h Header
	if len(m.ParentHeader) == 0 {
		return h, nil
	}
	if err := scanHeader(m.ParentHeader, &h); err != nil {
		return h, fmt.Errorf("zmq: parent header: %w", err)
	}
	return h, nil
}

// DecodeContent unmarshals the content into v.
func (m *Message) DecodeContent(v any) error {
	if err := json.Unmarshal(m.Content, v); err != nil {
		return fmt.Errorf("zmq: %s content: %w", m.hdr.MsgType, err)
	}
	return nil
}

// headerOut is the full header written into messages this package builds.
type headerOut struct {
	MsgID    string `json:"msg_id"`
	MsgType  string `json:"msg_type"`
	Session  string `json:"session"`
	Username string `json:"username"`
	Date     string `json:"date"`
	Version  string `json:"version"`
}

// DateFormat is the ISO 8601 layout, with microseconds and an explicit zone,
// used for header dates.
const DateFormat = "2006-01-02T15:04:05.000000Z07:00"

// NewMessage builds a message with a fresh header (uuid msg_id, current UTC
// date, protocol version 5.3). parent is the raw parent header, or nil for
// none; content is marshalled to JSON (nil gives {}).
func NewMessage(msgType, session, username string, parent []byte, content any) (*Message, error) {
	h := headerOut{
		MsgID:    uuid.NewString(),
		MsgType:  msgType,
		Session:  session,
		Username: username,
		Date:     time.Now().UTC().Format(DateFormat),
		Version:  ProtocolVersion,
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("zmq: marshal header: %w", err)
	}
	cb := []byte("{}")
	if content != nil {
		if cb, err = json.Marshal(content); err != nil {
			return nil, fmt.Errorf("zmq: marshal %s content: %w", msgType, err)
		}
	}
	if len(parent) == 0 {
		parent = []byte("{}")
	}
	return &Message{
		Header:       hb,
		ParentHeader: parent,
		Metadata:     []byte("{}"),
		Content:      cb,
		hdr: Header{MsgID: h.MsgID, MsgType: msgType, Session: session,
			Username: username, Date: flexString(h.Date), Version: ProtocolVersion},
	}, nil
}

// FromParts builds a message from its four JSON parts and buffers, as a
// websocket client sends them, and decodes the header's routing fields. An
// empty part is taken as {}.
func FromParts(header, parent, metadata, content []byte, buffers [][]byte) (*Message, error) {
	m := &Message{Header: header, ParentHeader: orEmpty(parent), Metadata: orEmpty(metadata),
		Content: orEmpty(content), Buffers: buffers}
	if err := m.decodeHeader(); err != nil {
		return nil, err
	}
	return m, nil
}

func orEmpty(b []byte) []byte {
	if len(b) == 0 || string(b) == "null" {
		return []byte("{}")
	}
	return b
}
