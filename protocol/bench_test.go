package protocol

import (
	"bytes"
	"testing"
)

var benchSizes = []struct {
	name string
	size int
}{
	{"16B", 16},
	{"1KiB", 1 << 10},
	{"16KiB", 16 << 10},
}

// benchMessage is a pushed message whose body has size bytes.
func benchMessage(size int) *Message {
	return &Message{
		MsgID:       2028398782042869765,
		Conv:        "d:1001:1002",
		Seq:         42,
		From:        1001,
		To:          1002,
		ClientMsgID: "9f1c2d3e-7b1d-4f6e-9a3b-2d5c8e1f0a47",
		ContentType: 1,
		Body:        bytes.Repeat([]byte{'x'}, size),
		ServerTime:  1772442930123,
	}
}

// BenchmarkDecode measures what a receiver does per frame: split the frame
// off the stream and decode its body into an owned value.
func BenchmarkDecode(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			frame := MustFrame(TypePush, 0, benchMessage(bs.size))
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				_, body, _, err := Decode(frame, 0)
				if err != nil {
					b.Fatal(err)
				}
				var m Message
				if err := DecodeBody(body, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendFrame measures encoding a frame into a reused buffer.
func BenchmarkAppendFrame(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			m := benchMessage(bs.size)
			buf := MustFrame(TypePush, 0, m)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				buf, err = AppendFrame(buf[:0], TypePush, 0, m)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeSend measures what the server does with every message it
// is sent: decode a Send's body, the usual way (decode.go) and the general
// way it takes for any other shape.
func BenchmarkDecodeSend(b *testing.B) {
	for _, bs := range benchSizes {
		s := &Send{ClientMsgID: "9f1c2d3e-7b1d-4f6e-9a3b-2d5c8e1f0a47", To: 1002, ContentType: 1, Body: bytes.Repeat([]byte{'x'}, bs.size)}
		body := MustFrame(TypeSend, 7, s)[PrefixSize:]
		for _, way := range []struct {
			name   string
			decode func([]byte, any) error
		}{{"usual", DecodeBody}, {"general", decodeGeneral}} {
			b.Run(bs.name+"/"+way.name, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					var v Send
					if err := way.decode(body, &v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
