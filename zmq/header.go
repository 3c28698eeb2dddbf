package zmq

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// scanHeader fills h from a header (or parent header) JSON object without
// encoding/json's reflection: it walks the top-level keys once, keeps the
// six routing fields and skips every other value. Strings with escapes,
// which real headers do not have, are unescaped by encoding/json.
func scanHeader(b []byte, h *Header) error {
	s := scanner{b: b}
	s.ws()
	if !s.eat('{') {
		return ErrBadHeader
	}
	// The fields are substrings of one copy of the header, made at the
	// first: one allocation a header instead of one a field.
	var src string
	sub := func(from, to int) string {
		if src == "" {
			src = string(b)
		}
		return src[from:to]
	}
	s.ws()
	if s.eat('}') {
		return s.end()
	}
	for {
		s.ws()
		key, _, ok := s.str()
		if !ok {
			return ErrBadHeader
		}
		s.ws()
		if !s.eat(':') {
			return ErrBadHeader
		}
		s.ws()
		var dst *string
		switch string(key) {
		case "msg_id":
			dst = &h.MsgID
		case "msg_type":
			dst = &h.MsgType
		case "session":
			dst = &h.Session
		case "username":
			dst = &h.Username
		case "date":
			dst = (*string)(&h.Date)
		case "version":
			dst = &h.Version
		}
		start := s.i
		if s.i < len(s.b) && s.b[s.i] == '"' {
			v, escaped, ok := s.str()
			if !ok {
				return ErrBadHeader
			}
			if dst != nil {
				if escaped {
					// Into a string of its own: h, through dst, would
					// escape to the heap on every call.
					var u string
					if err := json.Unmarshal(s.b[start:s.i], &u); err != nil {
						return fmt.Errorf("%w: %w", ErrBadHeader, err)
					}
					*dst = u
				} else {
					*dst = sub(s.i-1-len(v), s.i-1)
				}
			}
		} else {
			if !s.skipValue() {
				return ErrBadHeader
			}
			if dst != nil && key[0] == 'd' { // a numeric date, as some clients send
				*dst = sub(start, s.i)
			}
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return s.end()
		}
		return ErrBadHeader
	}
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return ErrBadHeader
	}
	return nil
}

// str reads a JSON string and returns its raw content and whether it had
// escapes.
func (s *scanner) str() (raw []byte, escaped, ok bool) {
	if !s.eat('"') {
		return nil, false, false
	}
	start := s.i
	for s.i < len(s.b) {
		if s.i += plainRun(s.b[s.i:]); s.i == len(s.b) {
			break
		}
		switch s.b[s.i] {
		case '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped, true
		case '\\':
			escaped = true
			s.i += 2
		default: // a control character
			return nil, false, false
		}
	}
	return nil, false, false
}

// Byte-wise constants for plainRun's word-at-a-time test.
const (
	eachByte = 0x0101010101010101
	highBits = 0x8080808080808080
)

// plainRun is the length of b's prefix that has no quote, backslash or
// control character: the bytes a JSON string's scan passes over. It tests
// eight bytes at a time (a byte test per byte made str a quarter of the
// gateway's time to parse a message); a word with one of them, or a
// false alarm above one, is finished byte by byte.
func plainRun(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, bs := x^(eachByte*'"'), x^(eachByte*'\\')
		if ((x-eachByte*0x20)&^x|(q-eachByte)&^q|(bs-eachByte)&^bs)&highBits != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == '"' || c == '\\' {
			break
		}
	}
	return i
}

// skipValue skips a number, literal, object or array (nested values are
// checked only for balance; Jupyter headers have none at the top level that
// matter here).
func (s *scanner) skipValue() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	default:
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ' ', '\t', '\n', '\r':
				return s.i > start
			case '"', '{', '[', ':':
				return false
			}
			s.i++
		}
		return false
	}
}
