// Package protocol turns bytes into frames and frames into bytes.
//
// A frame on the wire is a 4-byte big-endian length, an 8-byte header and a
// msgpack body:
//
//	offset  size  field
//	0       4     length      bytes that follow this field (header + body), big-endian
//	4       1     version     Version (1)
//	5       1     flags       0 in version 1; receivers ignore bits they do not know
//	6       2     type        frame Type, big-endian
//	8       4     request id  chosen by the client, echoed in the reply; 0 for pushes
//	12      n     body        msgpack map (may be empty: n = 0 means "all fields zero")
//
// The package does no I/O. Decode answers ErrIncomplete when the buffer does
// not yet hold a whole frame, and the caller reads more.
package protocol

import (
	"encoding/binary"
	"errors"
)

// Offsets and sizes of the frame header. See docs/protocol.md.
const (
	lengthOffset    = 0
	versionOffset   = 4
	flagsOffset     = 5
	typeOffset      = 6
	requestIDOffset = 8

	// LengthSize is the size of the length prefix.
	LengthSize = 4
	// HeaderSize is the size of the fixed header after the length prefix.
	HeaderSize = 8
	// PrefixSize is the number of bytes before the body: length and header.
	PrefixSize = LengthSize + HeaderSize

	// Version is the protocol version this package speaks.
	Version = 1

	// DefaultMaxFrame is the default limit of the length field: header plus body.
	DefaultMaxFrame = 64 << 10
)

// Decoding errors. ErrIncomplete is not a failure: read more bytes and call
// again. The others mean the stream cannot be trusted and the connection
// should be closed after an Error frame.
var (
	ErrIncomplete = errors.New("protocol: incomplete frame")
	ErrTooLarge   = errors.New("protocol: frame exceeds the size limit")
	ErrShort      = errors.New("protocol: frame length shorter than the header")
	ErrVersion    = errors.New("protocol: unsupported protocol version")
	ErrBadBody    = errors.New("protocol: malformed msgpack body")
	ErrEncode     = errors.New("protocol: cannot encode body")
)

// Header is the fixed part of a frame.
type Header struct {
	Version   uint8
	Flags     uint8
	Type      Type
	RequestID uint32
}

// Decode parses the frame at the start of buf. It returns the header, the
// body (a sub-slice of buf, valid only as long as buf is) and the total number
// of bytes the frame occupies, so the caller can discard them.
//
// With fewer bytes than a whole frame it returns ErrIncomplete; a length above
// maxFrame gives ErrTooLarge as soon as the prefix is readable, so an oversize
// frame is refused before its body arrives. A header with another version
// gives ErrVersion together with the header and size, so the caller can answer
// it. maxFrame <= 0 means DefaultMaxFrame.
func Decode(buf []byte, maxFrame int) (h Header, body []byte, n int, err error) {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	if len(buf) < LengthSize {
		return h, nil, 0, ErrIncomplete
	}
	length := binary.BigEndian.Uint32(buf[lengthOffset:])
	if uint64(length) > uint64(maxFrame) {
		return h, nil, 0, ErrTooLarge
	}
	if length < HeaderSize {
		return h, nil, 0, ErrShort
	}
	n = LengthSize + int(length)
	if len(buf) < n {
		return h, nil, 0, ErrIncomplete
	}
	h = Header{
		Version:   buf[versionOffset],
		Flags:     buf[flagsOffset],
		Type:      Type(binary.BigEndian.Uint16(buf[typeOffset:])),
		RequestID: binary.BigEndian.Uint32(buf[requestIDOffset:]),
	}
	if h.Version != Version {
		return h, nil, n, ErrVersion
	}
	return h, buf[PrefixSize:n], n, nil
}

// PeekSize tells how many bytes the frame at the start of buf will occupy
// once complete, or 0 if the length prefix is not yet readable.
func PeekSize(buf []byte) int {
	if len(buf) < LengthSize {
		return 0
	}
	return LengthSize + int(binary.BigEndian.Uint32(buf))
}

// appendHeader appends a frame prefix whose length field is filled in by
// finishFrame once the body is known.
func appendHeader(dst []byte, t Type, requestID uint32) []byte {
	var p [PrefixSize]byte
	p[versionOffset] = Version
	binary.BigEndian.PutUint16(p[typeOffset:], uint16(t))
	binary.BigEndian.PutUint32(p[requestIDOffset:], requestID)
	return append(dst, p[:]...)
}

func finishFrame(frame []byte) {
	binary.BigEndian.PutUint32(frame[lengthOffset:], uint32(len(frame)-LengthSize))
}
