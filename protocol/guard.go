package protocol

import (
	"encoding/binary"
	"errors"
)

// maxDepth is how deeply arrays and maps may nest in a body. Parley's own
// bodies nest four deep (ConversationList → conversations → Conversation →
// last); the limit leaves room for fields of later versions.
const maxDepth = 32

var (
	errTruncated = errors.New("truncated msgpack value")
	errBadCode   = errors.New("msgpack code 0xc1 is never used")
	errTooDeep   = errors.New("msgpack arrays and maps nest too deeply")
	errTrailing  = errors.New("trailing bytes after the msgpack map")
)

// checkBody walks the single msgpack value in b without decoding it and
// checks that every length it declares fits in the bytes that follow, that
// nothing follows the value and that it nests at most maxDepth deep.
//
// msgpack allocates what a length header announces before it reads the
// elements (v5.4.1 ignores its own allocation limit for slices and reads bin
// in one piece), so a 16-byte body announcing an array of 2^32 integers would
// make it allocate 32 GiB. After this check an array or map holds at most
// one element per byte of the body and a str or bin is no longer than the
// body, so decoding allocates in proportion to the body's size.
func checkBody(b []byte) error {
	var open [maxDepth]uint64 // values left in each enclosing array or map
	depth := 0
	left := uint64(1) // values left at this level: the body is one value
	i := 0
	for {
		if left == 0 {
			if depth == 0 {
				break
			}
			depth--
			left = open[depth]
			continue
		}
		left--
		if i >= len(b) {
			return errTruncated
		}
		c := b[i]
		i++
		var size int     // bytes of payload after the code and length
		var elems uint64 // values inside an array or map
		var lenBytes int // width of a length field after the code
		var extra int    // fixed payload added to a length (the ext type byte)
		var isMap bool   // elems counts pairs
		var container bool
		switch {
		case c <= 0x7f, c >= 0xe0: // positive and negative fixint
		case c <= 0x8f: // fixmap
			elems, isMap, container = uint64(c&0x0f), true, true
		case c <= 0x9f: // fixarray
			elems, container = uint64(c&0x0f), true
		case c <= 0xbf: // fixstr
			size = int(c & 0x1f)
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
			case 0xc1:
				return errBadCode
			case 0xc4, 0xd9: // bin 8, str 8
				lenBytes = 1
			case 0xc5, 0xda: // bin 16, str 16
				lenBytes = 2
			case 0xc6, 0xdb: // bin 32, str 32
				lenBytes = 4
			case 0xc7: // ext 8
				lenBytes, extra = 1, 1
			case 0xc8: // ext 16
				lenBytes, extra = 2, 1
			case 0xc9: // ext 32
				lenBytes, extra = 4, 1
			case 0xcc, 0xd0: // uint 8, int 8
				size = 1
			case 0xcd, 0xd1: // uint 16, int 16
				size = 2
			case 0xca, 0xce, 0xd2: // float 32, uint 32, int 32
				size = 4
			case 0xcb, 0xcf, 0xd3: // float 64, uint 64, int 64
				size = 8
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16
				size = 1 + 1<<(c-0xd4)
			case 0xdc: // array 16
				lenBytes, container = 2, true
			case 0xdd: // array 32
				lenBytes, container = 4, true
			case 0xde: // map 16
				lenBytes, isMap, container = 2, true, true
			case 0xdf: // map 32
				lenBytes, isMap, container = 4, true, true
			}
		}
		if lenBytes > 0 {
			if len(b)-i < lenBytes {
				return errTruncated
			}
			var n uint64
			switch lenBytes {
			case 1:
				n = uint64(b[i])
			case 2:
				n = uint64(binary.BigEndian.Uint16(b[i:]))
			case 4:
				n = uint64(binary.BigEndian.Uint32(b[i:]))
			}
			i += lenBytes
			if container {
				elems = n
			} else {
				if n+uint64(extra) > uint64(len(b)-i) {
					return errTruncated
				}
				size = int(n) + extra
			}
		}
		if size > len(b)-i {
			return errTruncated
		}
		i += size
		if !container {
			continue
		}
		if depth == maxDepth {
			return errTooDeep
		}
		if isMap {
			elems *= 2 // at most 2^33: no overflow
		}
		// Every value takes at least one byte.
		if elems > uint64(len(b)-i) {
			return errTruncated
		}
		if elems == 0 {
			continue
		}
		open[depth] = left
		depth++
		left = elems
	}
	if i != len(b) {
		return errTrailing
	}
	return nil
}
