package zmq

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Delimiter separates the routing prefix from the signed message frames.
var Delimiter = []byte("<IDS|MSG>")

// Errors returned by Parse. Callers test them with errors.Is.
var (
	ErrNoDelimiter   = errors.New("zmq: no <IDS|MSG> delimiter")
	ErrTooFewFrames  = errors.New("zmq: too few frames after the delimiter")
	ErrBadSignature  = errors.New("zmq: bad message signature")
	ErrUnsignedFrame = errors.New("zmq: message is not signed")
	ErrScheme        = errors.New("zmq: unsupported signature scheme")
)

// Signer signs and verifies messages with one kernel's HMAC key. An empty key
// means messages are unsigned. A Signer is safe for concurrent use.
type Signer struct {
	key  []byte
	pool sync.Pool // of *mac
}

// mac is an HMAC keyed with a Signer's key and room for its sum (a local
// array would escape through the hash.Hash interface: an allocation a
// message).
type mac struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// NewSigner returns a Signer for the connection file's signature_scheme and
// key. Only hmac-sha256 (the scheme every Jupyter kernel uses) is accepted;
// an empty scheme means hmac-sha256.
func NewSigner(scheme, key string) (*Signer, error) {
	if scheme != "" && !strings.EqualFold(scheme, "hmac-sha256") {
		return nil, fmt.Errorf("%w: %q", ErrScheme, scheme)
	}
	s := &Signer{key: []byte(key)}
	s.pool.New = func() any { return &mac{h: hmac.New(sha256.New, s.key)} }
	return s, nil
}

// Enabled reports whether messages are signed.
func (s *Signer) Enabled() bool { return len(s.key) > 0 }

// sign appends the lowercase hex HMAC-SHA256 of the four JSON frames to dst.
func (s *Signer) sign(dst []byte, header, parent, metadata, content []byte) []byte {
	m := s.pool.Get().(*mac)
	m.h.Reset()
	m.h.Write(header)
	m.h.Write(parent)
	m.h.Write(metadata)
	m.h.Write(content)
	m.h.Sum(m.sum[:0])
	n := len(dst)
	dst = append(dst, make([]byte, hex.EncodedLen(len(m.sum)))...)
	hex.Encode(dst[n:], m.sum[:])
	s.pool.Put(m)
	return dst
}

// Sign returns the signature of the four JSON frames, or nil when unsigned.
func (s *Signer) Sign(header, parent, metadata, content []byte) []byte {
	if !s.Enabled() {
		return nil
	}
	return s.sign(make([]byte, 0, 2*sha256.Size), header, parent, metadata, content)
}

// Verify reports whether sig is the signature of the four frames, comparing
// in constant time. With signing disabled every message verifies.
func (s *Signer) Verify(sig, header, parent, metadata, content []byte) bool {
	if !s.Enabled() {
		return true
	}
	var buf [2 * sha256.Size]byte
	want := s.sign(buf[:0], header, parent, metadata, content)
	return hmac.Equal(sig, want)
}

// Serialize returns the wire frames of m: identities, delimiter, signature,
// the four JSON frames, then buffers. The frames alias m's byte slices.
func (s *Signer) Serialize(m *Message) [][]byte {
	frames := make([][]byte, 0, len(m.Identities)+6+len(m.Buffers))
	frames = append(frames, m.Identities...)
	frames = append(frames, Delimiter,
		s.Sign(m.Header, m.ParentHeader, m.Metadata, m.Content),
		m.Header, m.ParentHeader, m.Metadata, m.Content)
	return append(frames, m.Buffers...)
}

// Parse splits wire frames into a Message, verifies the signature and decodes
// the header's routing fields. The Message aliases the frames' bytes, not
// the frames slice, which the caller may reuse.
func (s *Signer) Parse(frames [][]byte) (*Message, error) {
	d := -1
	for i, f := range frames {
		if bytes.Equal(f, Delimiter) {
			d = i
			break
		}
	}
	if d < 0 {
		return nil, ErrNoDelimiter
	}
	rest := frames[d+1:]
	if len(rest) < 5 {
		return nil, fmt.Errorf("%w: %d", ErrTooFewFrames, len(rest))
	}
	sig := rest[0]
	if s.Enabled() {
		if len(sig) == 0 {
			return nil, ErrUnsignedFrame
		}
		if !s.Verify(sig, rest[1], rest[2], rest[3], rest[4]) {
			return nil, ErrBadSignature
		}
	}
	m := &Message{
		Header:       rest[1],
		ParentHeader: rest[2],
		Metadata:     rest[3],
		Content:      rest[4],
	}
	switch {
	case d == 1:
		m.ids[0] = frames[0]
		m.Identities = m.ids[:]
	case d > 1:
		m.Identities = append([][]byte(nil), frames[:d]...)
	}
	if len(rest) > 5 {
		m.Buffers = append([][]byte(nil), rest[5:]...)
	}
	if err := m.decodeHeader(); err != nil {
		return nil, err
	}
	return m, nil
}
