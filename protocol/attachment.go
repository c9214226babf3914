package protocol

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Message content types (Message.ContentType, Send.ContentType). The server
// stores and forwards every content type unchanged; it reads only the body
// of ContentAttachment, which must be an Attachment (docs/protocol.md,
// "Attachments").
//
//	0            text (UTF-8)
//	1            an attachment: the body is an msgpack Attachment
//	2-15         reserved for more attachment kinds
//	16-255       application-defined, not interpreted by the server
//	0x0100-...   reserved for in-sequence events (edits, receipts)
const (
	ContentText       uint16 = 0
	ContentAttachment uint16 = 1
)

// Attachment is the body of a message of ContentAttachment: a file stored
// on the server's file endpoint, content-addressed by its SHA-256. The
// fields are those the endpoint returned when the file was uploaded.
type Attachment struct {
	Name   string `msgpack:"name"`             // the file's name, as uploaded (ValidFileName)
	MIME   string `msgpack:"mime"`             // the MIME type the server sniffed from the content
	Size   int64  `msgpack:"size"`             // bytes
	SHA256 []byte `msgpack:"sha256"`           // 32 bytes
	Width  uint32 `msgpack:"width,omitempty"`  // pixels, for an image whose header the server read
	Height uint32 `msgpack:"height,omitempty"` // pixels
	URL    string `msgpack:"url"`              // the download path on the file endpoint: FilePath(SHA256)
}

// Attachment limits.
const (
	MaxFileName = 255 // bytes of UTF-8
	maxMIME     = 127
)

// ErrBadAttachment is returned by DecodeAttachment and Attachment.Check for
// a body that is not a valid Attachment; it wraps the reason.
var ErrBadAttachment = errors.New("protocol: bad attachment")

// FilePath is the path of a file on the file endpoint: /v1/files/ and the
// lowercase hex of its SHA-256.
func FilePath(sum []byte) string { return "/v1/files/" + hex.EncodeToString(sum) }

// ValidFileName reports whether name may name an uploaded file: 1-255
// bytes of valid UTF-8, no control character, no '/' or '\', not "." or
// "..", no leading or trailing space. Names never reach a path on the
// server (files are stored by their hash); the rule keeps them safe for the
// clients that save them.
func ValidFileName(name string) bool {
	if name == "" || len(name) > MaxFileName || !utf8.ValidString(name) {
		return false
	}
	if name == "." || name == ".." || strings.TrimSpace(name) != name {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '/' || r == '\\' || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// Check reports why a is not a valid attachment (ErrBadAttachment), or nil.
func (a *Attachment) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadAttachment, fmt.Sprintf(format, args...))
	}
	switch {
	case !ValidFileName(a.Name):
		return bad("name must be 1-%d bytes of UTF-8 without control characters, '/' or '\\'", MaxFileName)
	case a.MIME == "" || len(a.MIME) > maxMIME || !strings.Contains(a.MIME, "/"):
		return bad("mime must be a MIME type of at most %d bytes", maxMIME)
	case a.Size < 0:
		return bad("size must not be negative")
	case len(a.SHA256) != 32:
		return bad("sha256 must be 32 bytes")
	case a.URL != FilePath(a.SHA256):
		return bad("url must be %s", FilePath(a.SHA256))
	}
	return nil
}

// EncodeAttachment returns the msgpack body of a (as a Send's Body with
// ContentAttachment).
func EncodeAttachment(a *Attachment) ([]byte, error) {
	s := encoderTo(nil)
	err := s.enc.Encode(a)
	b := s.done()
	if err != nil {
		return nil, fmt.Errorf("%w: attachment: %v", ErrEncode, err)
	}
	return b, nil
}

// DecodeAttachment decodes and checks the body of a ContentAttachment
// message, with the strict rules of DecodeBody.
func DecodeAttachment(body []byte) (Attachment, error) {
	var a Attachment
	if len(body) == 0 {
		return a, fmt.Errorf("%w: empty body", ErrBadAttachment)
	}
	if err := DecodeBody(body, &a); err != nil {
		return a, fmt.Errorf("%w: %v", ErrBadAttachment, err)
	}
	return a, a.Check()
}
