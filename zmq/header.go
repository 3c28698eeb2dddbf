package zmq

import (
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
					if err := json.Unmarshal(s.b[start:s.i], dst); err != nil {
						return fmt.Errorf("%w: %w", ErrBadHeader, err)
					}
				} else {
					*dst = string(v)
				}
			}
		} else {
			if !s.skipValue() {
				return ErrBadHeader
			}
			if dst != nil && key[0] == 'd' { // a numeric date, as some clients send
				*dst = string(s.b[start:s.i])
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
		switch c := s.b[s.i]; {
		case c == '\\':
			escaped = true
			s.i += 2
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped, true
		case c < 0x20:
			return nil, false, false
		default:
			s.i++
		}
	}
	return nil, false, false
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
