package framing

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
)

func sampleMessage(t testing.TB, buffers ...[]byte) *zmq.Message {
	m, err := zmq.NewMessage("comm_msg", "sess-1", "u", []byte(`{"msg_id":"p1","msg_type":"execute_request","session":"sess-1","username":"u","date":"2026-01-01T00:00:00.000000Z","version":"5.3"}`),
		map[string]any{"comm_id": "c", "data": map[string]any{"x": "quote\" and \\ and \n"}})
	testkit.NoError(t, err)
	m.Buffers = buffers
	return m
}

func TestV1RoundTripIsByteExact(t *testing.T) {
	for _, bufs := range [][][]byte{nil, {{1, 2, 3}, {}, []byte("buf")}} {
		m := sampleMessage(t, bufs...)
		frame, bin := V1{}.Encode(nil, zmq.Shell, m)
		testkit.True(t, bin, "v1 frames are binary")
		n := binary.LittleEndian.Uint64(frame)
		testkit.Equal(t, n, uint64(6+len(bufs)))
		testkit.Equal(t, binary.LittleEndian.Uint64(frame[8:]), 8*(n+1))
		testkit.Equal(t, binary.LittleEndian.Uint64(frame[8*n:]), uint64(len(frame)))
		ch, back, err := V1{}.Decode(frame, false)
		testkit.NoError(t, err)
		testkit.Equal(t, ch, zmq.Shell)
		testkit.Equal(t, back.Header, m.Header)
		testkit.Equal(t, back.ParentHeader, m.ParentHeader)
		testkit.Equal(t, back.Content, m.Content)
		testkit.Equal(t, len(back.Buffers), len(bufs))
		for i := range bufs {
			testkit.True(t, bytes.Equal(back.Buffers[i], bufs[i]), "buffer %d differs", i)
		}
	}
}

// The frame JupyterLab sends first, as captured: offsets 56, 61, 275, 277, 279, 281.
func TestV1DecodesJupyterLabsFirstFrame(t *testing.T) {
	header := []byte(`{"date":"2026-11-26T04:07:57.397Z","msg_id":"0b5e3c1d-0000-4000-8000-000000000000","msg_type":"kernel_info_request","session":"11111111-2222-4333-8444-555555555555","username":"","version":"5.2"}`)
	header = append(header, bytes.Repeat([]byte(" "), 214-len(header))...)
	var f []byte
	f = binary.LittleEndian.AppendUint64(f, 6)
	for _, o := range []uint64{56, 61, 275, 277, 279, 281} {
		f = binary.LittleEndian.AppendUint64(f, o)
	}
	f = append(f, "shell"...)
	f = append(f, header...)
	f = append(f, "{}{}{}"...)
	ch, m, err := V1{}.Decode(f, false)
	testkit.NoError(t, err)
	testkit.Equal(t, ch, zmq.Shell)
	testkit.Equal(t, m.MsgType(), "kernel_info_request")
}

func TestLegacyEncoding(t *testing.T) {
	m := sampleMessage(t)
	frame, bin := Legacy{}.Encode(nil, zmq.IOPub, m)
	testkit.True(t, !bin, "a message without buffers is a text frame")
	var obj map[string]any
	testkit.NoError(t, json.Unmarshal(frame, &obj))
	testkit.Equal(t, obj["channel"], any("iopub"))
	testkit.Equal(t, obj["msg_type"], any("comm_msg"))
	testkit.Equal(t, obj["msg_id"], any(m.Head().MsgID))
	testkit.Equal(t, obj["buffers"], any([]any{}))
	testkit.Equal(t, obj["parent_header"].(map[string]any)["msg_id"], any("p1"))

	withBufs := sampleMessage(t, []byte{0xff, 0}, []byte("two"))
	frame, bin = Legacy{}.Encode(nil, zmq.IOPub, withBufs)
	testkit.True(t, bin, "a message with buffers is a binary frame")
	testkit.Equal(t, binary.BigEndian.Uint32(frame), uint32(3))
	testkit.Equal(t, binary.BigEndian.Uint32(frame[4:]), uint32(16))
	jsonPart, bufs, err := SplitLegacyBinary(frame)
	testkit.NoError(t, err)
	testkit.NoError(t, json.Unmarshal(jsonPart, &obj))
	testkit.Equal(t, bufs, [][]byte{{0xff, 0}, []byte("two")})

	// A client's binary frame decodes, also when relayed as a text frame.
	frame, _ = Legacy{}.Encode(nil, zmq.Stdin, withBufs)
	for _, text := range []bool{false, true} {
		ch, back, err := Legacy{}.Decode(frame, text)
		testkit.NoError(t, err)
		testkit.Equal(t, ch, zmq.Stdin)
		testkit.Equal(t, back.Buffers, [][]byte{{0xff, 0}, []byte("two")})
	}
}

func TestDecodeRejectsBadFrames(t *testing.T) {
	good, _ := V1{}.Encode(nil, zmq.Shell, sampleMessage(t))
	mut := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		f    Codec
		data []byte
		text bool
		want error
	}{
		{"v1 empty", V1{}, nil, false, ErrFrame},
		{"v1 as text", V1{}, good, true, ErrFrame},
		{"v1 truncated", V1{}, good[:len(good)-3], false, ErrFrame},
		{"v1 huge count", V1{}, mut(func(b []byte) []byte { binary.LittleEndian.PutUint64(b, 1<<60); return b }), false, ErrFrame},
		{"v1 offset past end", V1{}, mut(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[16:], 1<<40); return b }), false, ErrFrame},
		{"v1 decreasing offsets", V1{}, mut(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[24:], 57); return b }), false, ErrFrame},
		{"v1 unknown channel", V1{}, mut(func(b []byte) []byte { b[bytes.Index(b, []byte("shell"))+4] = 'x'; return b }), false, ErrChannel},
		{"legacy not json", Legacy{}, []byte("hello"), true, ErrFrame},
		{"legacy unknown channel", Legacy{}, []byte(`{"header":{"msg_id":"1","msg_type":"x"},"channel":"nope"}`), true, ErrChannel},
		{"legacy header not object", Legacy{}, []byte(`{"header":[1],"channel":"shell"}`), true, ErrFrame},
		{"legacy header missing", Legacy{}, []byte(`{"channel":"shell"}`), true, ErrFrame},
		{"legacy binary bad count", Legacy{}, []byte{0, 0, 0, 9, 0, 0, 0, 8}, false, ErrFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.f.Decode(tt.data, tt.text)
			testkit.ErrorIs(t, err, tt.want)
		})
	}
	// Kernel-side channels decode too: the bench harness reads iopub.
	frame, _ := V1{}.Encode(nil, zmq.IOPub, sampleMessage(t))
	ch, _, err := V1{}.Decode(frame, false)
	testkit.NoError(t, err)
	testkit.Equal(t, ch, zmq.IOPub)
	// A missing channel means shell.
	ch, _, err = Legacy{}.Decode([]byte(`{"header":{"msg_id":"1","msg_type":"kernel_info_request"},"parent_header":null,"content":{}}`), true)
	testkit.NoError(t, err)
	testkit.Equal(t, ch, zmq.Shell)
}

// Legacy frames are read as leniently as Jupyter Server reads them: the
// optional parts may be missing or null, and "buffers" may hold anything
// (Enterprise Gateway's own client sends {}).
func TestLegacyDecodeIsLenientWithOptionalParts(t *testing.T) {
	const header = `"header":{"username":"","version":"5.0","session":"","msg_id":"m1","msg_type":"execute_request"}`
	for _, body := range []string{
		`"parent_header":{},"channel":"shell","content":{"code":"1"},"metadata":{},"buffers":{}`,
		`"parent_header":{},"channel":"shell","content":{"code":"1"},"metadata":{},"buffers":[]`,
		`"parent_header":{},"channel":"shell","content":{"code":"1"},"metadata":{},"buffers":null`,
		`"parent_header":{},"channel":"shell","content":{"code":"1"},"metadata":{}`,
		`"parent_header":null,"content":{"code":"1"},"metadata":null`,
		`"content":{"code":"1"}`,
	} {
		t.Run(body, func(t *testing.T) {
			ch, m, err := Legacy{}.Decode([]byte("{"+header+","+body+"}"), true)
			testkit.NoError(t, err)
			testkit.Equal(t, ch, zmq.Shell)
			testkit.Equal(t, m.MsgType(), "execute_request")
			testkit.Equal(t, string(m.Metadata), "{}")
			testkit.Equal(t, string(m.ParentHeader), "{}")
			testkit.Equal(t, string(m.Content), `{"code":"1"}`)
		})
	}
}

// FuzzV1Decode and FuzzLegacyDecode: any frame decodes or fails cleanly.
func FuzzV1Decode(f *testing.F) {
	good, _ := V1{}.Encode(nil, zmq.Stdin, sampleMessage(f, []byte("b")))
	f.Add(good)
	f.Add([]byte{6, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) { V1{}.Decode(data, false) })
}

func FuzzLegacyDecode(f *testing.F) {
	text, _ := Legacy{}.Encode(nil, zmq.Shell, sampleMessage(f))
	bin, _ := Legacy{}.Encode(nil, zmq.Shell, sampleMessage(f, []byte("b")))
	f.Add(text, true)
	f.Add(bin, false)
	f.Add(bin, true)
	f.Fuzz(func(t *testing.T, data []byte, isText bool) { Legacy{}.Decode(data, isText) })
}
