package zmq

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kernelgate/kernelgate/internal/testkit"
)

func signedFrames(t testing.TB, s *Signer) [][]byte {
	m, err := NewMessage("execute_request", "sess", "user", nil, map[string]any{"code": "1+1"})
	testkit.NoError(t, err)
	m.Identities = [][]byte{[]byte("id-1")}
	m.Buffers = [][]byte{{0, 1, 2}}
	return s.Serialize(m)
}

func TestParseRoundTrip(t *testing.T) {
	s, err := NewSigner("hmac-sha256", "secret")
	testkit.NoError(t, err)
	frames := signedFrames(t, s)
	m, err := s.Parse(frames)
	testkit.NoError(t, err)
	testkit.Equal(t, m.MsgType(), "execute_request")
	testkit.Equal(t, m.Head().Session, "sess")
	testkit.Equal(t, m.Head().Version, ProtocolVersion)
	testkit.Equal(t, m.Identities, [][]byte{[]byte("id-1")})
	testkit.Equal(t, m.Buffers, [][]byte{{0, 1, 2}})
	testkit.True(t, strings.HasSuffix(string(m.Head().Date), "Z"), "date %q has no zone", m.Head().Date)
}

// Parse keeps the frames, not the slice that holds them: the reader reads
// the next message into the same slice.
func TestParseLetsTheCallerReuseTheFramesSlice(t *testing.T) {
	s, err := NewSigner("hmac-sha256", "secret")
	testkit.NoError(t, err)
	for _, ids := range [][][]byte{nil, {[]byte("topic")}, {[]byte("id-1"), []byte("id-2")}} {
		m, err := NewMessage("stream", "sess", "user", nil, map[string]any{"text": "x"})
		testkit.NoError(t, err)
		m.Identities = ids
		m.Buffers = [][]byte{{1}, {2}}
		frames := s.Serialize(m)
		got, err := s.Parse(frames)
		testkit.NoError(t, err)
		for i := range frames {
			frames[i] = []byte("reused")
		}
		testkit.Equal(t, got.Identities, ids)
		testkit.Equal(t, got.Buffers, [][]byte{{1}, {2}})
		testkit.Equal(t, got.MsgType(), "stream")
	}
}

// plainRun stops at the first quote, backslash or control character
// wherever it falls in or across the eight-byte words, and passes over
// every other byte, UTF-8 included.
func TestPlainRun(t *testing.T) {
	for _, stop := range []byte{'"', '\\', 0, 0x1f, '\n'} {
		for at := 0; at < 20; at++ {
			b := bytes.Repeat([]byte{'a', 0x7f, 0x80, 0xff, ' ', '!', '#', '[', 0xdc, 0x5d}, 2)[:20]
			b[at] = stop
			testkit.Equal(t, plainRun(b), at)
		}
	}
	testkit.Equal(t, plainRun([]byte("plain text, no end \xe2\x82\xac")), 22)
	testkit.Equal(t, plainRun(nil), 0)
}

func TestParseRejectsBadInput(t *testing.T) {
	s, err := NewSigner("hmac-sha256", "secret")
	testkit.NoError(t, err)
	good := signedFrames(t, s)
	d := 1 // index of the delimiter in good
	edit := func(f func([][]byte) [][]byte) [][]byte {
		c := make([][]byte, len(good))
		for i := range good {
			c[i] = bytes.Clone(good[i])
		}
		return f(c)
	}
	other, _ := NewSigner("", "other")
	tests := []struct {
		name   string
		signer *Signer
		frames [][]byte
		want   error
	}{
		{"wrong signature", s, edit(func(f [][]byte) [][]byte { f[d+1][0] ^= 1; return f }), ErrBadSignature},
		{"wrong key", other, good, ErrBadSignature},
		{"tampered content", s, edit(func(f [][]byte) [][]byte { f[d+5] = []byte(`{"code":"rm"}`); return f }), ErrBadSignature},
		{"missing signature", s, edit(func(f [][]byte) [][]byte { f[d+1] = nil; return f }), ErrUnsignedFrame},
		{"missing delimiter", s, edit(func(f [][]byte) [][]byte { return append(f[:d], f[d+1:]...) }), ErrNoDelimiter},
		{"too few frames", s, edit(func(f [][]byte) [][]byte { return f[:d+4] }), ErrTooFewFrames},
		{"no frames", s, nil, ErrNoDelimiter},
		{"header not JSON", noKey(t), edit(func(f [][]byte) [][]byte { f[d+2] = []byte("not json"); return f }), ErrBadHeader},
		{"header is an array", noKey(t), edit(func(f [][]byte) [][]byte { f[d+2] = []byte("[1]"); return f }), ErrBadHeader},
		{"header truncated", noKey(t), edit(func(f [][]byte) [][]byte { f[d+2] = []byte(`{"msg_id":`); return f }), ErrBadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.signer.Parse(tt.frames)
			testkit.ErrorIs(t, err, tt.want)
		})
	}
}

func noKey(t *testing.T) *Signer {
	s, err := NewSigner("hmac-sha256", "")
	testkit.NoError(t, err)
	return s
}

func TestUnsignedMessagesParseWithEmptyKey(t *testing.T) {
	s := noKey(t)
	frames := signedFrames(t, s)
	testkit.Equal(t, len(frames[2]), 0)
	_, err := s.Parse(frames)
	testkit.NoError(t, err)
}

func TestHeaderDateMayBeANumber(t *testing.T) {
	s := noKey(t)
	h := []byte(`{"msg_id":"1","msg_type":"status","session":"s","username":"u","date":1700000000.5,"version":"5.0"}`)
	m, err := s.Parse([][]byte{Delimiter, nil, h, []byte("{}"), []byte("{}"), []byte("{}")})
	testkit.NoError(t, err)
	testkit.Equal(t, string(m.Head().Date), "1700000000.5")
}

func TestSignerRejectsUnknownScheme(t *testing.T) {
	_, err := NewSigner("hmac-md5", "k")
	testkit.ErrorIs(t, err, ErrScheme)
}

// interopScript signs and verifies with jupyter_client's own Session: it
// reads {"key", "frames"} (base64) on stdin, deserializes the frames (which
// checks our signature), and prints frames it serialized itself.
const interopScript = `
import base64, json, sys
from jupyter_client.session import Session
req = json.load(sys.stdin)
s = Session(key=req["key"].encode(), signature_scheme="hmac-sha256")
frames = [base64.b64decode(f) for f in req["frames"]]
idents, rest = s.feed_identities(frames, copy=True)
msg = s.deserialize(rest, content=True, copy=True)
reply = s.msg("kernel_info_reply", content={"echo": msg["content"]["code"]}, parent=msg)
out = s.serialize(reply, ident=idents)
print(json.dumps([base64.b64encode(f).decode() for f in out]))
`

func TestSignaturesInteroperateWithJupyterClient(t *testing.T) {
	key := NewKey()
	s, err := NewSigner("hmac-sha256", key)
	testkit.NoError(t, err)
	frames := signedFrames(t, s)
	enc := make([]string, len(frames))
	for i, f := range frames {
		enc[i] = base64.StdEncoding.EncodeToString(f)
	}
	in, err := json.Marshal(map[string]any{"key": key, "frames": enc})
	testkit.NoError(t, err)
	cmd := exec.Command(testkit.Python(), "-c", interopScript)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("jupyter_client rejected our message: %s", ee.Stderr)
	}
	testkit.NoError(t, err)

	var back []string
	testkit.NoError(t, json.Unmarshal(out, &back))
	raw := make([][]byte, len(back))
	for i, f := range back {
		raw[i], err = base64.StdEncoding.DecodeString(f)
		testkit.NoError(t, err)
	}
	m, err := s.Parse(raw)
	testkit.NoError(t, err)
	testkit.Equal(t, m.MsgType(), "kernel_info_reply")
	testkit.Equal(t, m.Identities, [][]byte{[]byte("id-1")})
	var c map[string]string
	testkit.NoError(t, m.DecodeContent(&c))
	testkit.Equal(t, c["echo"], "1+1")

	// And a frame jupyter_client signed fails with another key.
	other, _ := NewSigner("hmac-sha256", NewKey())
	_, err = other.Parse(raw)
	testkit.ErrorIs(t, err, ErrBadSignature)
}

// FuzzParse feeds arbitrary frame sets to the parser: it must return a
// message or an error, never panic. The seeds run in the normal suite.
func FuzzParse(f *testing.F) {
	s, _ := NewSigner("hmac-sha256", "k")
	f.Add(bytes.Join(signedFrames(f, s), []byte{0}), true)
	f.Add(bytes.Join(signedFrames(f, noKeyF()), []byte{0}), false)
	f.Add([]byte("<IDS|MSG>\x00\x00{\x00{}\x00{}\x00{}"), false)
	f.Add([]byte("<IDS|MSG>"), true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, signed bool) {
		signer := noKeyF()
		if signed {
			signer = s
		}
		m, err := signer.Parse(bytes.Split(data, []byte{0}))
		if err == nil && m == nil {
			t.Fatal("nil message without error")
		}
		if err == nil {
			m.Parent()
		}
	})
}

func noKeyF() *Signer {
	s, _ := NewSigner("", "")
	return s
}

// The hand-written header scanner agrees with encoding/json.
func TestScanHeaderMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"msg_id":"a","msg_type":"status","session":"s","username":"u","date":"2026-01-01T00:00:00.000000Z","version":"5.3"}`,
		`{ "date" : 1700000000.25 , "msg_id" : "x\"y\\u00e9", "nested": {"a": [1, {"b": "}"}]}, "n": null, "t": true, "msg_type": "x" }`,
		`{}`,
		`{"subshell_id": null, "msg_type": "execute_request", "extra": [1,2,3], "version": "5.4"}`,
	} {
		var fast, slow Header
		testkit.NoError(t, scanHeader([]byte(in), &fast))
		testkit.NoError(t, json.Unmarshal([]byte(in), &slow))
		testkit.Equal(t, fast, slow)
	}
	for _, bad := range []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1} x`, "{\"a\":\"\n\"}", `{"a":{"b":1}`, `"str"`, `{"a":tru"e"}`, `{"a":"\`, `{"a":"b\"}`} {
		var h Header
		testkit.True(t, scanHeader([]byte(bad), &h) != nil, "accepted %q", bad)
	}
}

func FuzzScanHeader(f *testing.F) {
	f.Add([]byte(`{"msg_id":"a","msg_type":"status","nested":{"x":[1,"]"]},"date":1.5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast Header
		slow, ok := strictHeader(data)
		// encoding/json replaces invalid UTF-8; the scanner keeps the bytes.
		if scanHeader(data, &fast) == nil && ok && utf8.Valid(data) && fast != slow {
			t.Fatalf("scanner %+v, encoding/json %+v", fast, slow)
		}
	})
}

// strictHeader is the reference decoding: exact (case-sensitive) keys, as
// Python's jupyter_client reads them; encoding/json's struct decoding
// would match keys case-insensitively.
func strictHeader(data []byte) (Header, bool) {
	var raw map[string]json.RawMessage
	if json.Unmarshal(data, &raw) != nil {
		return Header{}, false
	}
	var h Header
	for key, dst := range map[string]*string{"msg_id": &h.MsgID, "msg_type": &h.MsgType, "session": &h.Session,
		"username": &h.Username, "date": (*string)(&h.Date), "version": &h.Version} {
		if v, ok := raw[key]; ok {
			var f flexString
			// Only date may be a number; other fields count as strings only.
			numeric := len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9')
			if f.UnmarshalJSON(v) == nil && (v[0] == '"' || key == "date" && numeric) {
				*dst = string(f)
			}
		}
	}
	return h, true
}
