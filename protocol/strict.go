package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
)

// Strict typing of bodies. msgpack decodes an array into a struct (as its
// fields in order) and an integer into a narrower field by truncating it
// (70000 into a uint16 is 4464; -1 into a uint64 is 2^64-1). The protocol
// says a body is a map and an integer that does not fit its field is an
// error, so checkTypes walks the body against its Go type before it is
// decoded: every struct must arrive as a map (or nil), every integer field
// as an integer (or nil) within the field's range, every list of integers
// as an array of such integers.

var (
	errNotMap     = errors.New("a body or struct field must be a msgpack map")
	errNotInteger = errors.New("an integer field holds another type")
	errRange      = errors.New("an integer is outside its field's range")
	errNotArray   = errors.New("a list field must be a msgpack array")
)

// fieldInfo is what checkTypes needs of a struct: its fields by msgpack key.
type fieldInfo map[string]reflect.Type

var fieldInfos sync.Map // reflect.Type → fieldInfo

func fieldsOf(t reflect.Type) fieldInfo {
	if v, ok := fieldInfos.Load(t); ok {
		return v.(fieldInfo)
	}
	fi := make(fieldInfo, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fi[name] = f.Type
	}
	v, _ := fieldInfos.LoadOrStore(t, fi)
	return v.(fieldInfo)
}

// checkTypes checks b, a whole msgpack value that checkBody accepted,
// against t, the type it is to be decoded into.
func checkTypes(b []byte, t reflect.Type) error {
	i, err := checkValue(b, 0, t, 0)
	if err != nil {
		return err
	}
	if i != len(b) {
		return errTrailing
	}
	return nil
}

// checkValue checks the value at b[i:] against t and returns the offset
// after it.
func checkValue(b []byte, i int, t reflect.Type, depth int) (int, error) {
	if depth > maxDepth {
		return 0, errTooDeep
	}
	if b[i] == 0xc0 { // nil is the zero value of any field
		return i + 1, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return checkValue(b, i, t.Elem(), depth+1)
	case reflect.Struct:
		n, j, ok := mapHeader(b, i)
		if !ok {
			return 0, errNotMap
		}
		fields := fieldsOf(t)
		var err error
		for range n {
			key, isStr := strAt(b, j)
			if j, err = skip(b, j); err != nil {
				return 0, err
			}
			ft, known := fields[key]
			if !isStr || !known {
				if j, err = skip(b, j); err != nil {
					return 0, err
				}
				continue
			}
			if j, err = checkValue(b, j, ft, depth+1); err != nil {
				return 0, fmt.Errorf("%s: %w", key, err)
			}
		}
		return j, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v, neg, j, ok := intAt(b, i)
		if !ok {
			return 0, errNotInteger
		}
		if !fits(t, v, neg) {
			return 0, errRange
		}
		return j, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 { // []byte: bin or str, the decoder checks
			return skip(b, i)
		}
		n, j, ok := arrayHeader(b, i)
		if !ok {
			return 0, errNotArray
		}
		var err error
		for range n {
			if j, err = checkValue(b, j, t.Elem(), depth+1); err != nil {
				return 0, err
			}
		}
		return j, nil
	}
	return skip(b, i)
}

// fits reports whether the integer (its magnitude v, negative or not) is
// in the range of an integer type.
func fits(t reflect.Type, v uint64, neg bool) bool {
	bits := t.Bits()
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return !neg && (bits == 64 || v < 1<<bits)
	}
	if neg {
		return v <= 1<<(bits-1) // magnitude of the most negative value
	}
	return v < 1<<(bits-1)
}

// intAt reads the integer at b[i:]: its magnitude, its sign and the offset
// after it; ok is false if the value is not an integer.
func intAt(b []byte, i int) (v uint64, neg bool, next int, ok bool) {
	c := b[i]
	switch {
	case c <= 0x7f:
		return uint64(c), false, i + 1, true
	case c >= 0xe0:
		return uint64(-int64(int8(c))), true, i + 1, true
	}
	var size int
	signed := false
	switch c {
	case 0xcc:
		size = 1
	case 0xcd:
		size = 2
	case 0xce:
		size = 4
	case 0xcf:
		size = 8
	case 0xd0:
		size, signed = 1, true
	case 0xd1:
		size, signed = 2, true
	case 0xd2:
		size, signed = 4, true
	case 0xd3:
		size, signed = 8, true
	default:
		return 0, false, 0, false
	}
	p := b[i+1 : i+1+size]
	var u uint64
	switch size {
	case 1:
		u = uint64(p[0])
	case 2:
		u = uint64(binary.BigEndian.Uint16(p))
	case 4:
		u = uint64(binary.BigEndian.Uint32(p))
	case 8:
		u = binary.BigEndian.Uint64(p)
	}
	if signed {
		var s int64
		switch size {
		case 1:
			s = int64(int8(u))
		case 2:
			s = int64(int16(u))
		case 4:
			s = int64(int32(u))
		case 8:
			s = int64(u)
		}
		if s < 0 {
			if s == math.MinInt64 {
				return 1 << 63, true, i + 1 + size, true
			}
			return uint64(-s), true, i + 1 + size, true
		}
		u = uint64(s)
	}
	return u, false, i + 1 + size, true
}

// mapHeader reads a map header: the number of pairs and the offset of the
// first key.
func mapHeader(b []byte, i int) (n int, next int, ok bool) {
	c := b[i]
	switch {
	case c >= 0x80 && c <= 0x8f:
		return int(c & 0x0f), i + 1, true
	case c == 0xde:
		return int(binary.BigEndian.Uint16(b[i+1:])), i + 3, true
	case c == 0xdf:
		return int(binary.BigEndian.Uint32(b[i+1:])), i + 5, true
	}
	return 0, 0, false
}

func arrayHeader(b []byte, i int) (n int, next int, ok bool) {
	c := b[i]
	switch {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), i + 1, true
	case c == 0xdc:
		return int(binary.BigEndian.Uint16(b[i+1:])), i + 3, true
	case c == 0xdd:
		return int(binary.BigEndian.Uint32(b[i+1:])), i + 5, true
	}
	return 0, 0, false
}

// strAt returns the string at b[i:], if it is one.
func strAt(b []byte, i int) (string, bool) {
	c := b[i]
	var n, h int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n, h = int(c&0x1f), 1
	case c == 0xd9:
		n, h = int(b[i+1]), 2
	case c == 0xda:
		n, h = int(binary.BigEndian.Uint16(b[i+1:])), 3
	case c == 0xdb:
		n, h = int(binary.BigEndian.Uint32(b[i+1:])), 5
	default:
		return "", false
	}
	return string(b[i+h : i+h+n]), true
}

// skip returns the offset after the value at b[i:]. b passed checkBody, so
// every length in it fits.
func skip(b []byte, i int) (int, error) {
	left := 1
	for left > 0 {
		if i >= len(b) {
			return 0, errTruncated
		}
		left--
		c := b[i]
		i++
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		case c <= 0x8f:
			left += 2 * int(c&0x0f)
		case c <= 0x9f:
			left += int(c & 0x0f)
		case c <= 0xbf:
			i += int(c & 0x1f)
		default:
			switch c {
			case 0xc4, 0xd9:
				i += 1 + int(b[i])
			case 0xc5, 0xda:
				i += 2 + int(binary.BigEndian.Uint16(b[i:]))
			case 0xc6, 0xdb:
				i += 4 + int(binary.BigEndian.Uint32(b[i:]))
			case 0xc7:
				i += 2 + int(b[i])
			case 0xc8:
				i += 3 + int(binary.BigEndian.Uint16(b[i:]))
			case 0xc9:
				i += 5 + int(binary.BigEndian.Uint32(b[i:]))
			case 0xcc, 0xd0:
				i++
			case 0xcd, 0xd1:
				i += 2
			case 0xca, 0xce, 0xd2:
				i += 4
			case 0xcb, 0xcf, 0xd3:
				i += 8
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
				i += 1 + 1<<(c-0xd4)
			case 0xdc:
				left += int(binary.BigEndian.Uint16(b[i:]))
				i += 2
			case 0xdd:
				left += int(binary.BigEndian.Uint32(b[i:]))
				i += 4
			case 0xde:
				left += 2 * int(binary.BigEndian.Uint16(b[i:]))
				i += 2
			case 0xdf:
				left += 2 * int(binary.BigEndian.Uint32(b[i:]))
				i += 4
			default:
				return 0, errBadCode
			}
		}
	}
	if i > len(b) {
		return 0, errTruncated
	}
	return i, nil
}
