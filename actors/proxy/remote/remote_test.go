package remote

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/leaktest"
	"github.com/kernelgate/kernelgate/internal/testkit"
	"github.com/kernelgate/kernelgate/zmq"
	"github.com/rs/zerolog"
)

// testKeys is one small key for the package's tests (size does not matter
// to the protocol; 1024 is what EG itself uses).
var testKeys = func() *KeyPair {
	k, err := NewKeyPair(1024)
	if err != nil {
		panic(err)
	}
	return k
}()

func samplePayload(id string) Payload {
	return Payload{ConnectionInfo: zmq.ConnectionInfo{IP: "0.0.0.0", Transport: "tcp", ShellPort: 1, IOPubPort: 2, StdinPort: 3,
		ControlPort: 4, HBPort: 5, Key: "k", SignatureScheme: "hmac-sha256"}, KernelID: id, PID: 42, PGID: 42, CommPort: 6}
}

func TestPayloadRoundTrip(t *testing.T) {
	want := samplePayload("a-kernel")
	wire, err := Encrypt(testKeys.PublicKey(), want)
	testkit.NoError(t, err)
	got, err := testKeys.Decode(wire)
	testkit.NoError(t, err)
	testkit.Equal(t, got, want)
}

func TestDecodeRejects(t *testing.T) {
	other, err := NewKeyPair(1024)
	testkit.NoError(t, err)
	forOther, err := Encrypt(other.PublicKey(), samplePayload("x"))
	testkit.NoError(t, err)
	b64 := func(s string) []byte { return []byte(base64.StdEncoding.EncodeToString([]byte(s))) }
	noID, err := Encrypt(testKeys.PublicKey(), Payload{})
	testkit.NoError(t, err)
	for _, tt := range []struct {
		name string
		wire []byte
	}{
		{"empty", nil},
		{"not base64", []byte("%%%")},
		{"not JSON", b64("hello")},
		{"version 0 (no envelope)", b64(`garbage`)},
		{"no version", b64(`{"key":"","conn_info":""}`)},
		{"version 2", b64(`{"version":2,"key":"","conn_info":""}`)},
		{"key not base64", b64(`{"version":1,"key":"%","conn_info":""}`)},
		{"key for another gateway", forOther},
		{"no kernel id", noID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := testKeys.Decode(tt.wire)
			testkit.ErrorIs(t, err, ErrBadPayload)
		})
	}
}

func TestDecryptECBRejectsBadPadding(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 16)
	sealed := encryptECB(key, []byte(`{"a":1}`))
	plain, err := decryptECB(key, sealed)
	testkit.NoError(t, err)
	testkit.Equal(t, string(plain), `{"a":1}`)
	sealed[len(sealed)-1] ^= 0xff // the last block now decrypts to noise
	_, err = decryptECB(key, sealed)
	testkit.ErrorIs(t, err, ErrBadPayload)
	_, err = decryptECB(key, sealed[:5])
	testkit.ErrorIs(t, err, ErrBadPayload)
}

func TestIntAcceptsStrings(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Int
	}{{`42`, 42}, {`"42"`, 42}, {`"jvm@host"`, 0}, {`null`, 0}} {
		var n Int
		testkit.NoError(t, json.Unmarshal([]byte(tt.in), &n))
		testkit.Equal(t, n, tt.want)
	}
}

func newTestListener(t *testing.T) *Listener {
	l := NewListener(ListenerConfig{IP: "127.0.0.1", KeyBits: 1024, MaxPayload: 8 << 10, ReadTimeout: 2 * time.Second, Logger: zerolog.Nop()})
	t.Cleanup(l.Close)
	return l
}

func send(t *testing.T, addr string, b []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	testkit.NoError(t, err)
	defer c.Close()
	c.Write(b)
}

// Garbage, oversized and slow callbacks are dropped, and none of them holds
// up a real one.
func TestListenerDropsBadCallbacks(t *testing.T) {
	defer leaktest.Check(t)()
	l := newTestListener(t)
	defer l.Close() // before the leak check
	w, err := l.Register("k1")
	testkit.NoError(t, err)
	defer w.Close()

	slow, err := net.Dial("tcp", l.Address()) // a slow loris: connects, sends a byte, waits
	testkit.NoError(t, err)
	defer slow.Close()
	slow.Write([]byte("e"))
	send(t, l.Address(), []byte("garbage"))
	send(t, l.Address(), bytes.Repeat([]byte("A"), 9<<10))
	stranger, err := Encrypt(l.PublicKey(), samplePayload("nobody-waits-for-me"))
	testkit.NoError(t, err)
	send(t, l.Address(), stranger)
	real, err := Encrypt(l.PublicKey(), samplePayload("k1"))
	testkit.NoError(t, err)
	send(t, l.Address(), real)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := w.Wait(ctx)
	testkit.NoError(t, err)
	testkit.Equal(t, p.KernelID, "k1")
	testkit.Eventually(t, 10*time.Second, func() error {
		if n := l.Dropped(); n < 4 { // garbage, oversized, stranger, and the loris once its time is up
			return errors.New("not all bad callbacks counted yet")
		}
		return nil
	})
}

func TestWaiterTimesOut(t *testing.T) {
	l := newTestListener(t)
	w, err := l.Register("k2")
	testkit.NoError(t, err)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = w.Wait(ctx)
	testkit.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestCommRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.NoError(t, err)
	signals, shutdowns := make(chan syscall.Signal, 1), make(chan struct{}, 1)
	served := make(chan struct{})
	go func() {
		defer close(served)
		ServeComm(ln, CommHandler{
			Signal:   func(sig syscall.Signal) { signals <- sig },
			Shutdown: func() { shutdowns <- struct{}{} },
		})
	}()
	addr := ln.Addr().String()
	testkit.NoError(t, SendComm(context.Background(), addr, SignalRequest(syscall.SIGINT), time.Second))
	testkit.Equal(t, testkit.Recv(t, signals, 5*time.Second), syscall.SIGINT)
	testkit.NoError(t, SendComm(context.Background(), addr, ShutdownRequest, time.Second))
	testkit.Recv(t, shutdowns, 5*time.Second)

	ln.Close()
	<-served
	err = SendComm(context.Background(), addr, SignalRequest(0), time.Second)
	testkit.ErrorIs(t, err, ErrRefused)
}

func TestReadCommRejectsOversized(t *testing.T) {
	a, b := net.Pipe()
	go func() {
		a.Write(bytes.Repeat([]byte(" "), MaxCommRequest+10))
		a.Close()
	}()
	_, err := readComm(b, time.Second)
	testkit.True(t, err != nil, "an oversized request was accepted")
	io.Copy(io.Discard, b)
}

// FuzzDecode: no callback, however malformed, panics the decoder, and
// whatever it accepts names a kernel.
func FuzzDecode(f *testing.F) {
	valid, err := Encrypt(testKeys.PublicKey(), samplePayload("seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte("garbage"))
	f.Add([]byte(base64.StdEncoding.EncodeToString([]byte(`{"version":1,"key":"AAAA","conn_info":"AAAAAAAAAAAAAAAAAAAAAA=="}`))))
	f.Fuzz(func(t *testing.T, wire []byte) {
		p, err := testKeys.Decode(wire)
		if err == nil && p.KernelID == "" {
			t.Fatal("accepted a payload without a kernel id")
		}
	})
}
