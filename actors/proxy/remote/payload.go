// Package remote is Enterprise Gateway's remote-kernel launcher protocol,
// both ends of it: the gateway's key pair and response listener that
// receive a launcher's encrypted connection info, the comm-port requests
// that signal and stop a remote kernel, and the helpers a launcher uses to
// answer (see actors/proxy/remote/launcher). Speaking it byte for byte is
// what lets EG's kernel images and launchers run behind kernelgate.
package remote

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/kernelgate/kernelgate/zmq"
)

// ErrBadPayload reports a callback that is not a well-formed, decryptable
// version-1 payload.
var ErrBadPayload = errors.New("bad launcher payload")

// KeyPair is the gateway's RSA key pair: launchers encrypt the AES key of
// their payload with its public half.
type KeyPair struct {
	key    *rsa.PrivateKey
	public string
}

// NewKeyPair generates a key pair of the given size in bits.
func NewKeyPair(bits int) (*KeyPair, error) {
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, fmt.Errorf("generate RSA key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode RSA public key: %w", err)
	}
	return &KeyPair{key: key, public: base64.StdEncoding.EncodeToString(der)}, nil
}

// PublicKey is the `{public_key}` argv value: base64 of the DER
// SubjectPublicKeyInfo (a PEM body without its armour and line breaks).
func (k *KeyPair) PublicKey() string { return k.public }

// Payload is the connection info a launcher reports once its kernel's
// ports are chosen.
type Payload struct {
	zmq.ConnectionInfo
	KernelID string `json:"kernel_id"`
	// PID and PGID are the kernel's process on its host (Toree sends the
	// pid as a string; anything that is not a number reads as 0).
	PID  Int `json:"pid"`
	PGID Int `json:"pgid"`
	// CommPort is the launcher's listener for signal and shutdown requests.
	CommPort Int `json:"comm_port"`
}

// Int is a JSON number that a launcher may also send as a string.
type Int int

// UnmarshalJSON accepts 42, "42", and reads anything else as 0, as EG does.
func (n *Int) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*n = 0
	switch v := v.(type) {
	case float64:
		*n = Int(v)
	case string:
		if i, err := strconv.Atoi(v); err == nil {
			*n = Int(i)
		}
	}
	return nil
}

// envelope is the version-1 wire format: base64 of this JSON.
type envelope struct {
	Version  *int   `json:"version"`
	Key      string `json:"key"`
	ConnInfo string `json:"conn_info"`
}

// Decode opens a callback: base64 JSON envelope, RSA PKCS#1 v1.5 wrapped
// AES key, AES-ECB PKCS#7 connection info.
func (k *KeyPair) Decode(wire []byte) (Payload, error) {
	var p Payload
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(wire)))
	if err != nil {
		return p, fmt.Errorf("%w: not base64", ErrBadPayload)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return p, fmt.Errorf("%w: not a JSON envelope (a version-0 launcher?)", ErrBadPayload)
	}
	if env.Version == nil || *env.Version != 1 {
		return p, fmt.Errorf("%w: unsupported version", ErrBadPayload)
	}
	wrapped, err1 := base64.StdEncoding.DecodeString(env.Key)
	sealed, err2 := base64.StdEncoding.DecodeString(env.ConnInfo)
	if err1 != nil || err2 != nil {
		return p, fmt.Errorf("%w: key or conn_info is not base64", ErrBadPayload)
	}
	// PKCS#1 v1.5 is EG's choice, not ours, and it invites padding-oracle
	// attacks. The session-key form answers a bad padding with a random key
	// in constant time, so a forged key fails later, exactly like garbage,
	// and the listener never answers anyone anyway.
	aesKey := make([]byte, 16)
	rand.Read(aesKey)
	//lint:ignore SA1019 EG's launchers wrap the key with PKCS#1 v1.5; compatibility requires it
	if err := rsa.DecryptPKCS1v15SessionKey(nil, k.key, wrapped, aesKey); err != nil {
		return p, fmt.Errorf("%w: the wrapped AES key does not fit this gateway's key", ErrBadPayload)
	}
	plain, err := decryptECB(aesKey, sealed)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(plain, &p); err != nil {
		return p, fmt.Errorf("%w: connection info is not JSON", ErrBadPayload)
	}
	if p.KernelID == "" {
		return p, fmt.Errorf("%w: no kernel_id", ErrBadPayload)
	}
	return p, nil
}

// Encrypt seals a payload for the gateway whose public key (the
// `{public_key}` value) is given: what a launcher sends.
func Encrypt(publicKey string, p Payload) ([]byte, error) {
	der, err := base64.StdEncoding.DecodeString(publicKey)
	if err != nil {
		return nil, fmt.Errorf("public key is not base64: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("public key is not an RSA key")
	}
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	aesKey := make([]byte, 16)
	if _, err := rand.Read(aesKey); err != nil {
		return nil, err
	}
	//lint:ignore SA1019 the gateway decodes only what EG's launchers send: PKCS#1 v1.5
	wrapped, err := rsa.EncryptPKCS1v15(rand.Reader, rsaPub, aesKey)
	if err != nil {
		return nil, fmt.Errorf("wrap AES key: %w", err)
	}
	version := 1
	env, err := json.Marshal(envelope{Version: &version,
		Key:      base64.StdEncoding.EncodeToString(wrapped),
		ConnInfo: base64.StdEncoding.EncodeToString(encryptECB(aesKey, plain))})
	if err != nil {
		return nil, err
	}
	return []byte(base64.StdEncoding.EncodeToString(env)), nil
}

// ECB is what EG's launchers use (Java's default "AES" cipher is ECB too);
// Go leaves it out of crypto/cipher on purpose, so it is spelled out here,
// block by block.

func encryptECB(key, plain []byte) []byte {
	block, _ := aes.NewCipher(key) // a 16-byte key: cannot fail
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	buf := append(append([]byte(nil), plain...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	for i := 0; i < len(buf); i += aes.BlockSize {
		block.Encrypt(buf[i:i+aes.BlockSize], buf[i:i+aes.BlockSize])
	}
	return buf
}

func decryptECB(key, sealed []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: AES key of %d bytes", ErrBadPayload, len(key))
	}
	if len(sealed) == 0 || len(sealed)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: conn_info is not whole AES blocks", ErrBadPayload)
	}
	out := make([]byte, len(sealed))
	for i := 0; i < len(sealed); i += aes.BlockSize {
		block.Decrypt(out[i:i+aes.BlockSize], sealed[i:i+aes.BlockSize])
	}
	pad := int(out[len(out)-1])
	if pad == 0 || pad > aes.BlockSize || !bytes.Equal(out[len(out)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, fmt.Errorf("%w: bad padding", ErrBadPayload)
	}
	return out[:len(out)-pad], nil
}

// CallBack sends p, encrypted for publicKey, to the gateway's response
// address, as a launcher does once its kernel listens.
func CallBack(ctx context.Context, addr, publicKey string, p Payload) error {
	wire, err := Encrypt(publicKey, p)
	if err != nil {
		return fmt.Errorf("encrypt connection info: %w", err)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("response address: %w", err)
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(wire); err != nil {
		return fmt.Errorf("response address: %w", err)
	}
	return nil
}
