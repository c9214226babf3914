package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// errNoField: the map has no such key.
var errNoField = errors.New("no such field")

// PeekBytes returns the bin or str value under key in a body (a msgpack
// map, as every body is) without decoding anything else: for a reader
// that needs one field of very many frames, such as a load generator
// reading a thousand connections' pushes. The result aliases body. The
// body is checked as DecodeBody checks it (checkBody); its types are not.
func PeekBytes(body []byte, key string) ([]byte, error) {
	b, i, err := peek(body, key)
	if err != nil {
		return nil, err
	}
	v, _, ok := rawAt(b, i)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not bytes", ErrBadBody, key)
	}
	return v, nil
}

// PeekUint is PeekBytes for a non-negative integer value (a seq, an id).
func PeekUint(body []byte, key string) (uint64, error) {
	b, i, err := peek(body, key)
	if err != nil {
		return 0, err
	}
	c := b[i]
	switch {
	case c <= 0x7f:
		return uint64(c), nil
	case c == 0xcc || c == 0xd0 && int8(b[i+1]) >= 0:
		return uint64(b[i+1]), nil
	case c == 0xcd || c == 0xd1 && int16(binary.BigEndian.Uint16(b[i+1:])) >= 0:
		return uint64(binary.BigEndian.Uint16(b[i+1:])), nil
	case c == 0xce || c == 0xd2 && int32(binary.BigEndian.Uint32(b[i+1:])) >= 0:
		return uint64(binary.BigEndian.Uint32(b[i+1:])), nil
	case c == 0xcf || c == 0xd3 && int64(binary.BigEndian.Uint64(b[i+1:])) >= 0:
		return binary.BigEndian.Uint64(b[i+1:]), nil
	}
	return 0, fmt.Errorf("%w: %s is not a non-negative integer", ErrBadBody, key)
}

// peek finds key in body and returns body and the offset of its value.
func peek(body []byte, key string) ([]byte, int, error) {
	if err := checkBody(body); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	if len(body) == 0 {
		return nil, 0, fmt.Errorf("%w: %s: %v", ErrBadBody, key, errNoField)
	}
	n, i, ok := mapHeader(body, 0)
	if !ok {
		return nil, 0, fmt.Errorf("%w: not a map", ErrBadBody)
	}
	for range n {
		k, next, isStr := rawAt(body, i)
		if !isStr {
			return nil, 0, fmt.Errorf("%w: a key is not a string", ErrBadBody)
		}
		if string(k) == key { // no allocation: the compiler compares in place
			return body, next, nil
		}
		var err error
		if i, err = skip(body, next); err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrBadBody, err)
		}
	}
	return nil, 0, fmt.Errorf("%w: %s: %v", ErrBadBody, key, errNoField)
}

// rawAt returns the payload of the str or bin value at b[i:] and the
// offset after it. b passed checkBody, so its lengths fit.
func rawAt(b []byte, i int) (v []byte, next int, ok bool) {
	c := b[i]
	var n, h int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n, h = int(c&0x1f), 1
	case c == 0xd9 || c == 0xc4:
		n, h = int(b[i+1]), 2
	case c == 0xda || c == 0xc5:
		n, h = int(binary.BigEndian.Uint16(b[i+1:])), 3
	case c == 0xdb || c == 0xc6:
		n, h = int(binary.BigEndian.Uint32(b[i+1:])), 5
	default:
		return nil, 0, false
	}
	return b[i+h : i+h+n], i + h + n, true
}
