// Package secure is Parley's Noise layer: the handshake's parameters and
// the framing of encrypted frames. It does no I/O; the server and the
// client drive it.
//
// Protocol: Noise_XX_25519_ChaChaPoly_SHA256 on first contact, and
// Noise_IK_25519_ChaChaPoly_SHA256 when the client knows the server's static
// key, both with Prologue. docs/protocol.md ("Encryption") has the wire
// format byte by byte.
//
// An encrypted frame keeps its 4-byte length prefix in clear; the bytes
// after it are the frame's header and body sealed by the sender's
// CipherState. A plaintext of up to MaxChunk-TagSize bytes is one Noise
// transport message; a longer one (the server's replies may reach 1 MiB)
// is cut into chunks of MaxChunk-TagSize plaintext bytes, each sealed as
// its own Noise message, so that no message passes Noise's 65535-byte limit.
package secure

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/flynn/noise"

	"github.com/parleyim/parley/protocol"
)

// Prologue is mixed into every handshake, so both sides agree that this is
// Parley's protocol version 1.
const Prologue = "parley/1"

// Pattern names as NoiseHello carries them.
const (
	PatternXX = "XX"
	PatternIK = "IK"
)

// Sizes of the encrypted framing.
const (
	// MaxChunk is Noise's limit on one message.
	MaxChunk = noise.MaxMsgLen
	// TagSize is the AEAD tag each Noise message carries.
	TagSize = 16
	// plainChunk is the most plaintext one Noise message carries.
	plainChunk = MaxChunk - TagSize
	// KeySize is the size of a Curve25519 key.
	KeySize = 32
)

// Suite is Parley's cipher suite: Curve25519, ChaCha20-Poly1305, SHA-256.
var Suite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashSHA256)

// Errors. ErrIncomplete is not a failure: read more bytes.
var (
	ErrIncomplete = protocol.ErrIncomplete
	ErrTooLarge   = errors.New("secure: sealed frame exceeds the size limit")
	ErrShort      = errors.New("secure: sealed frame shorter than its tag and header")
	ErrDecrypt    = errors.New("secure: frame failed authentication")
	ErrPattern    = errors.New("secure: unknown handshake pattern")
	ErrKey        = errors.New("secure: bad static key")
)

// Pattern returns the Noise handshake pattern of a NoiseHello pattern name.
func Pattern(name string) (noise.HandshakePattern, error) {
	switch name {
	case PatternXX:
		return noise.HandshakeXX, nil
	case PatternIK:
		return noise.HandshakeIK, nil
	}
	return noise.HandshakePattern{}, fmt.Errorf("%w: %q", ErrPattern, name)
}

// Initiator starts the client's side of a handshake. With a serverKey the
// pattern is IK, else XX. static is the client's own key pair; rng is the
// source of its ephemeral key (nil: crypto/rand).
func Initiator(static noise.DHKey, serverKey []byte, rng io.Reader) (*noise.HandshakeState, string, error) {
	pattern := PatternXX
	if serverKey != nil {
		if len(serverKey) != KeySize {
			return nil, "", fmt.Errorf("%w: %d bytes", ErrKey, len(serverKey))
		}
		pattern = PatternIK
	}
	p, _ := Pattern(pattern)
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   Suite,
		Random:        rng,
		Pattern:       p,
		Initiator:     true,
		Prologue:      []byte(Prologue),
		StaticKeypair: static,
		PeerStatic:    serverKey,
	})
	return hs, pattern, err
}

// Responder starts the server's side of a handshake in the pattern a
// NoiseHello names, with the server's static key pair.
func Responder(pattern string, static noise.DHKey, rng io.Reader) (*noise.HandshakeState, error) {
	p, err := Pattern(pattern)
	if err != nil {
		return nil, err
	}
	return noise.NewHandshakeState(noise.Config{
		CipherSuite:   Suite,
		Random:        rng,
		Pattern:       p,
		Prologue:      []byte(Prologue),
		StaticKeypair: static,
	})
}

// NewKey makes a static key pair (rng nil: crypto/rand).
func NewKey(rng io.Reader) (noise.DHKey, error) { return Suite.GenerateKeypair(rng) }

// KeyFromPrivate rebuilds a key pair from its private half.
func KeyFromPrivate(priv []byte) (noise.DHKey, error) {
	if len(priv) != KeySize {
		return noise.DHKey{}, fmt.Errorf("%w: %d bytes", ErrKey, len(priv))
	}
	return Suite.GenerateKeypair(fixedReader(priv))
}

type fixedReader []byte

func (r fixedReader) Read(p []byte) (int, error) { return copy(p, r), nil }

// Fingerprint is how people compare a server's static public key: the
// first 16 bytes of its SHA-256, base64 without padding, after "SHA256:".
func Fingerprint(pub []byte) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:16])
}

// SealedSize is the length field of a sealed frame whose header and body
// are plain bytes long.
func SealedSize(plain int) int {
	chunks := max(1, (plain+plainChunk-1)/plainChunk)
	return plain + chunks*TagSize
}

// plainSize inverts SealedSize; ok is false for a length no sealed frame has.
func plainSize(sealed int) (int, bool) {
	full := sealed / MaxChunk
	rest := sealed % MaxChunk
	if rest == 0 && full > 0 {
		return full * plainChunk, true
	}
	if rest < TagSize || (rest == TagSize && full > 0) {
		return 0, false
	}
	return full*plainChunk + rest - TagSize, true
}

// Seal appends the sealed form of frame (a whole plaintext frame, length
// prefix included) to dst: the new length prefix in clear, then the header
// and body sealed by cs.
func Seal(dst []byte, cs *noise.CipherState, frame []byte) ([]byte, error) {
	plain := frame[protocol.LengthSize:]
	dst = binary.BigEndian.AppendUint32(dst, uint32(SealedSize(len(plain))))
	for first := true; first || len(plain) > 0; first = false {
		n := min(len(plain), plainChunk)
		var err error
		if dst, err = cs.Encrypt(dst, nil, plain[:n]); err != nil {
			return dst, err
		}
		plain = plain[n:]
	}
	return dst, nil
}

// MaxSealed is the largest length field of a sealed frame whose plaintext
// length field is at most maxFrame.
func MaxSealed(maxFrame int) int { return SealedSize(maxFrame) }

// Open decrypts the sealed frame at the start of buf into dst, rebuilding
// the plaintext frame with its length prefix, and returns it with the
// number of bytes of buf it used. maxFrame bounds the plaintext length
// field as protocol.Decode does. ErrIncomplete: buf does not hold the whole
// sealed frame. A frame that fails authentication (tampered, replayed,
// reordered, cut short) gives ErrDecrypt.
func Open(dst []byte, cs *noise.CipherState, buf []byte, maxFrame int) (frame []byte, n int, err error) {
	if len(buf) < protocol.LengthSize {
		return nil, 0, ErrIncomplete
	}
	sealed := int(binary.BigEndian.Uint32(buf))
	if sealed > MaxSealed(maxFrame) {
		return nil, 0, ErrTooLarge
	}
	plain, ok := plainSize(sealed)
	if !ok || plain < protocol.HeaderSize {
		return nil, 0, ErrShort
	}
	n = protocol.LengthSize + sealed
	if len(buf) < n {
		return nil, 0, ErrIncomplete
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(plain))
	body := buf[protocol.LengthSize:n]
	for len(body) > 0 {
		c := min(len(body), MaxChunk)
		if dst, err = cs.Decrypt(dst, nil, body[:c]); err != nil {
			return nil, n, ErrDecrypt
		}
		body = body[c:]
	}
	return dst[start:], n, nil
}
