package zmq

import "encoding/json"

// StreamText returns the raw (still JSON-escaped) name and text of a
// stream message's content, {"name": ..., "text": ...}. ok is false for
// content with any other key or shape: such a message is not a plain
// stream write and a gateway must not merge it.
func StreamText(content []byte) (name, text []byte, ok bool) {
	s := scanner{b: content}
	s.ws()
	if !s.eat('{') {
		return nil, nil, false
	}
	for keys := 0; ; keys++ {
		s.ws()
		if keys > 0 {
			if s.eat('}') {
				return name, text, s.end() == nil && name != nil && text != nil
			}
			if !s.eat(',') {
				return nil, nil, false
			}
			s.ws()
		}
		key, _, ok := s.str()
		if !ok {
			return nil, nil, false
		}
		s.ws()
		if !s.eat(':') {
			return nil, nil, false
		}
		s.ws()
		v, _, ok := s.str()
		switch {
		case !ok:
			return nil, nil, false
		case string(key) == "name" && name == nil:
			name = v
		case string(key) == "text" && text == nil:
			text = v
		default:
			return nil, nil, false
		}
	}
}

// DisplayID returns content.transient.display_id of a display message
// (display_data, update_display_data), or "" when it has none.
func DisplayID(content []byte) string {
	s := scanner{b: content}
	if !s.member("transient") || !s.member("display_id") {
		return ""
	}
	start := s.i
	v, escaped, ok := s.str()
	if !ok {
		return ""
	}
	if !escaped {
		return string(v)
	}
	var id string
	if json.Unmarshal(s.b[start:s.i], &id) != nil {
		return ""
	}
	return id
}

// member moves into the object at the scanner's position and on to the
// value of its member name; false when it has none or on bad JSON.
func (s *scanner) member(name string) bool {
	if !s.enter() {
		return false
	}
	for {
		key, ok := s.key()
		if !ok {
			return false
		}
		if string(key) == name {
			return true
		}
		if !s.skipAny() {
			return false
		}
	}
}

// enter moves into the object at the scanner's position.
func (s *scanner) enter() bool {
	s.ws()
	return s.eat('{')
}

// key moves past the separator before the next member of the object
// entered last and reads its key; false at the object's end or on bad JSON.
func (s *scanner) key() ([]byte, bool) {
	s.ws()
	s.eat(',')
	s.ws()
	k, _, ok := s.str()
	if !ok {
		return nil, false
	}
	s.ws()
	if !s.eat(':') {
		return nil, false
	}
	s.ws()
	return k, true
}

// skipAny skips a value of any kind, strings included.
func (s *scanner) skipAny() bool {
	if s.i < len(s.b) && s.b[s.i] == '"' {
		_, _, ok := s.str()
		return ok
	}
	return s.skipValue()
}

// WithContent makes dst a copy of m with content instead of m's: the same
// parts and decoded header, without parsing anything again. dst may be
// reused from one call to the next.
func (m *Message) WithContent(dst *Message, content []byte) {
	*dst = *m
	dst.Content = content
}
