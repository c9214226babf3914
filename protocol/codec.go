package protocol

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// appendWriter is an io.Writer that appends to a slice, so an encoder can
// write a body straight after the frame prefix.
type appendWriter struct{ buf []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.buf = append(w.buf, c)
	return nil
}

func (w *appendWriter) WriteString(s string) (int, error) {
	w.buf = append(w.buf, s...)
	return len(s), nil
}

type encoderState struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	s := &encoderState{}
	s.enc = msgpack.NewEncoder(&s.w)
	s.enc.UseCompactInts(true)
	return s
}}

// encoderTo returns a pooled encoder that appends to dst; done returns
// what it wrote and hands the encoder back.
func encoderTo(dst []byte) *encoderState {
	s := encoders.Get().(*encoderState)
	s.w.buf = dst
	return s
}

func (s *encoderState) done() []byte {
	b := s.w.buf
	s.w.buf = nil
	encoders.Put(s)
	return b
}

type decoderState struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

var decoders = sync.Pool{New: func() any {
	s := &decoderState{}
	s.dec = msgpack.NewDecoder(&s.r)
	return s
}}

// AppendFrame appends a whole frame (prefix and msgpack body) to dst. body is
// one of the body types of this package, or nil for an empty body.
func AppendFrame(dst []byte, t Type, requestID uint32, body any) ([]byte, error) {
	start := len(dst)
	dst = appendHeader(dst, t, requestID)
	if body != nil {
		s := encoderTo(dst)
		var err error
		if h := handEncoder(body); h != nil {
			err = h.EncodeMsgpack(s.enc) // no reflection (encode.go)
		} else {
			err = s.enc.Encode(body)
		}
		dst = s.done()
		if err != nil {
			return dst[:start], fmt.Errorf("%w: %s: %v", ErrEncode, t, err)
		}
	}
	finishFrame(dst[start:])
	return dst, nil
}

// AppendSendAck is AppendFrame for a SendAck, which it takes by value so
// that the acknowledgement of every message allocates nothing.
func AppendSendAck(dst []byte, requestID uint32, a SendAck) ([]byte, error) {
	s := encoderTo(nil)
	dst, err := s.appendSendAck(dst, requestID, a)
	s.done()
	return dst, err
}

func (s *encoderState) appendSendAck(dst []byte, requestID uint32, a SendAck) ([]byte, error) {
	start := len(dst)
	s.w.buf = appendHeader(dst, TypeSendAck, requestID)
	err := a.EncodeMsgpack(s.enc)
	dst, s.w.buf = s.w.buf, nil
	if err != nil {
		return dst[:start], fmt.Errorf("%w: %s: %v", ErrEncode, TypeSendAck, err)
	}
	finishFrame(dst[start:])
	return dst, nil
}

// handEncoder returns body's hand-written encoder (encode.go): the hot
// bodies, as pointers; nil for any other body and for a nil pointer, which
// msgpack encodes as nil.
func handEncoder(body any) msgpack.CustomEncoder {
	switch b := body.(type) {
	case *Message:
		if b != nil {
			return b
		}
	case *Send:
		if b != nil {
			return b
		}
	case *SendAck:
		if b != nil {
			return b
		}
	}
	return nil
}

// MustFrame is AppendFrame into a new slice for bodies that cannot fail to
// encode (every type in this package); it panics on a programming error.
func MustFrame(t Type, requestID uint32, body any) []byte {
	b, err := AppendFrame(nil, t, requestID, body)
	if err != nil {
		panic(err)
	}
	return b
}

// DecodeBody decodes a msgpack body into v (a pointer to a body type). An
// empty body leaves v at its zero value. The result owns its memory: nothing
// in v refers to body, so body may be reused afterwards.
//
// The body is checked before it is decoded (see checkBody), so a hostile
// length header cannot make the decoder allocate more than a small multiple
// of len(body); and it is checked against v's type (checkTypes): it must be
// a map, and no integer may be out of its field's range.
func DecodeBody(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	if s, ok := v.(*Send); ok && decodeSend(body, s) {
		return nil // the usual Send, in one pass (decode.go)
	}
	return decodeGeneral(body, v)
}

// decodeGeneral is DecodeBody for any non-empty body: checked, then decoded
// by reflection.
func decodeGeneral(body []byte, v any) error {
	if err := checkBody(body); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	if _, _, ok := mapHeader(body, 0); !ok {
		return fmt.Errorf("%w: %v", ErrBadBody, errNotMap)
	}
	if t := reflect.TypeOf(v); t != nil && t.Kind() == reflect.Pointer {
		if err := checkTypes(body, t.Elem()); err != nil {
			return fmt.Errorf("%w: %v", ErrBadBody, err)
		}
	}
	s := decoders.Get().(*decoderState)
	s.r.Reset(body)
	s.dec.ResetReader(&s.r)
	err := s.dec.Decode(v)
	trailing := s.r.Len()
	s.r.Reset(nil)
	decoders.Put(s)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	if trailing != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadBody, trailing)
	}
	return nil
}

// AppendRawFrame appends a frame whose body is already msgpack-encoded
// (body may be empty), for replies sent often with the same body.
func AppendRawFrame(dst []byte, t Type, requestID uint32, body []byte) []byte {
	start := len(dst)
	dst = appendHeader(dst, t, requestID)
	dst = append(dst, body...)
	finishFrame(dst[start:])
	return dst
}
