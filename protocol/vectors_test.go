package protocol

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// specPath is the protocol document whose test vectors these tests check.
const specPath = "../docs/protocol.md"

// vector is one ```hex block of the document: a whole frame.
type vector struct {
	title string // the heading above the block
	name  string // the info string after "hex": a frame type's name
	line  int
	frame []byte
	bad   bool // a ```hex-refused block: the body must be refused BAD_BODY
	// attachment: a ```hex-attachment block, a message body of content type
	// 1 (an Attachment), not a frame.
	attachment bool
}

// newBody is NewBody; every type in frameTypes has a constructor there.
func newBody(t Type) any { return NewBody(t) }

// knownTypes lists every frame type of this package.
func knownTypes() []Type {
	ts := make([]Type, 0, len(frameTypes))
	for t := range frameTypes {
		ts = append(ts, t)
	}
	return ts
}

func typeByName(name string) (Type, bool) {
	for t, n := range frameTypes {
		if n.name == name {
			return t, true
		}
	}
	return 0, false
}

// readVectors extracts every ```hex block of the protocol document.
func readVectors(tb testing.TB) []vector {
	tb.Helper()
	f, err := os.Open(specPath)
	if err != nil {
		tb.Fatalf("open the protocol document: %v", err)
	}
	defer f.Close()
	var (
		vs    []vector
		cur   *vector
		hexb  strings.Builder
		title string
	)
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		switch {
		case cur != nil && strings.HasPrefix(text, "```"):
			b, err := hex.DecodeString(hexb.String())
			if err != nil {
				tb.Fatalf("%s:%d: vector %q: %v", specPath, cur.line, cur.title, err)
			}
			cur.frame = b
			vs = append(vs, *cur)
			cur = nil
		case cur != nil:
			hexb.WriteString(strings.Join(strings.Fields(text), ""))
		case strings.HasPrefix(text, "```hex "):
			cur = &vector{title: title, name: strings.TrimSpace(text[len("```hex "):]), line: line}
			hexb.Reset()
		case strings.HasPrefix(text, "```hex-attachment"):
			cur = &vector{title: title, name: "Attachment", line: line, attachment: true}
			hexb.Reset()
		case strings.HasPrefix(text, "```hex-refused "):
			cur = &vector{title: title, name: strings.TrimSpace(text[len("```hex-refused "):]), line: line, bad: true}
			hexb.Reset()
		case strings.HasPrefix(text, "#"):
			title = strings.TrimSpace(strings.TrimLeft(text, "#"))
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if cur != nil {
		tb.Fatalf("%s:%d: vector %q is not closed", specPath, cur.line, cur.title)
	}
	if len(vs) == 0 {
		tb.Fatalf("%s holds no ```hex vectors", specPath)
	}
	return vs
}

// TestVectors decodes every vector of the document and encodes the decoded
// body again: the bytes must be those of the document.
func TestVectors(t *testing.T) {
	for _, v := range readVectors(t) {
		t.Run(v.title, func(t *testing.T) {
			if v.attachment {
				checkAttachmentVector(t, v)
				return
			}
			typ, ok := typeByName(v.name)
			if !ok {
				t.Fatalf("line %d: info string names %q, not a frame type", v.line, v.name)
			}
			h, body, n, err := Decode(v.frame, 0)
			if err != nil {
				t.Fatalf("line %d: Decode: %v", v.line, err)
			}
			if n != len(v.frame) {
				t.Fatalf("line %d: frame is %d bytes, Decode used %d", v.line, len(v.frame), n)
			}
			if h.Type != typ {
				t.Fatalf("line %d: labelled %s, header says %s", v.line, typ, h.Type)
			}
			if h.Version != Version || h.Flags != 0 {
				t.Fatalf("line %d: header %+v", v.line, h)
			}
			got := newBody(h.Type)
			if v.bad {
				if err := DecodeBody(body, got); !errors.Is(err, ErrBadBody) {
					t.Fatalf("line %d: a refused body decodes: %+v, %v", v.line, got, err)
				}
				return
			}
			if err := DecodeBody(body, got); err != nil {
				t.Fatalf("line %d: DecodeBody: %v", v.line, err)
			}
			if len(body) == 0 {
				got = nil // an empty body is encoded as none
			}
			enc, err := AppendFrame(nil, h.Type, h.RequestID, got)
			if err != nil {
				t.Fatalf("line %d: AppendFrame: %v", v.line, err)
			}
			if !bytes.Equal(enc, v.frame) {
				t.Fatalf("line %d: re-encoded frame differs\ndoc: % x\ngot: % x", v.line, v.frame, enc)
			}
		})
	}
}

// checkAttachmentVector decodes an attachment body of the document and
// encodes it again: the bytes must be those of the document.
func checkAttachmentVector(t *testing.T, v vector) {
	a, err := DecodeAttachment(v.frame)
	if err != nil {
		t.Fatalf("line %d: DecodeAttachment: %v", v.line, err)
	}
	enc, err := EncodeAttachment(&a)
	if err != nil {
		t.Fatalf("line %d: EncodeAttachment: %v", v.line, err)
	}
	if !bytes.Equal(enc, v.frame) {
		t.Fatalf("line %d: re-encoded attachment differs\ndoc: % x\ngot: % x", v.line, v.frame, enc)
	}
}

// TestVectorsCoverEveryType fails when a frame type has no vector in the
// document, or no body type in newBody.
func TestVectorsCoverEveryType(t *testing.T) {
	seen := make(map[Type]bool)
	for _, v := range readVectors(t) {
		if typ, ok := typeByName(v.name); ok && !v.bad {
			seen[typ] = true
		}
		if v.attachment {
			seen[attachmentSeen] = true
		}
	}
	if !seen[attachmentSeen] {
		t.Errorf("no ```hex-attachment vector in %s", specPath)
	}
	for _, typ := range knownTypes() {
		if newBody(typ) == nil {
			t.Errorf("%s (0x%04X): no case in newBody", typ, uint16(typ))
		}
		if !seen[typ] {
			t.Errorf("%s (0x%04X): no ```hex %s vector in %s", typ, uint16(typ), typ, specPath)
		}
	}
}

// attachmentSeen marks, in TestVectorsCoverEveryType, that the document
// has an attachment vector; no frame type has its number.
const attachmentSeen Type = 0xFFFF

// TestWalkthrough checks that the byte-by-byte table of the document spells
// out its Send vector, at the offsets it claims.
func TestWalkthrough(t *testing.T) {
	data, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Walk-through of one frame\n")
	if !ok {
		t.Fatal("no walk-through section")
	}
	var frame []byte
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "## ") {
			break
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[2]), "`") {
			continue
		}
		off, err := strconv.Atoi(strings.TrimSpace(cells[1]))
		if err != nil {
			t.Fatalf("row %q: offset: %v", line, err)
		}
		if off != len(frame) {
			t.Errorf("row %q: offset %d, but %d bytes precede it", line, off, len(frame))
		}
		b, err := hex.DecodeString(strings.ReplaceAll(strings.Trim(strings.TrimSpace(cells[2]), "`"), " ", ""))
		if err != nil {
			t.Fatalf("row %q: %v", line, err)
		}
		frame = append(frame, b...)
		rows++
	}
	if rows == 0 {
		t.Fatal("the walk-through has no rows")
	}
	for _, v := range readVectors(t) {
		if bytes.Equal(v.frame, frame) {
			return
		}
	}
	t.Fatalf("the walk-through spells % x, which is no vector of the document", frame)
}
