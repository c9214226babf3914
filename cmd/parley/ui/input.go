package ui

import (
	"os"
	"unicode/utf8"
)

// WholeRunes wraps the terminal's input so that no read ends inside a
// UTF-8 sequence: the bytes of a character cut by the end of a read are
// held back and handed over with the next one.
//
// Bubble Tea v1.3.10 (the latest v1) reads its input 256 bytes at a time
// and, when a read fills its buffer and ends inside a character, reports
// the cut bytes as invalid input instead of waiting for the rest: a paste
// without bracketed paste lost one character at every 256-byte boundary.
// A read that ends short of the buffer is one Bubble Tea trusts to end on
// a boundary, and that is what this wrapper makes sure of. It is still a
// terminal file (Fd, Name) for raw mode and the cancelable reader.
func WholeRunes(f *os.File) *RuneFile { return &RuneFile{File: f} }

// RuneFile is the file WholeRunes returns.
type RuneFile struct {
	*os.File
	held [utf8.UTFMax]byte
	n    int // bytes in held
}

// Read implements io.Reader.
func (r *RuneFile) Read(p []byte) (int, error) {
	if len(p) <= r.n {
		return r.File.Read(p)
	}
	k := copy(p, r.held[:r.n])
	r.n = 0
	n, err := r.File.Read(p[k:])
	n += k
	if cut := cutTail(p[:n]); cut > 0 && err == nil {
		r.n = copy(r.held[:], p[n-cut:n])
		n -= cut
	}
	return n, err
}

// cutTail is how many bytes at the end of b begin a UTF-8 sequence that
// b does not finish.
func cutTail(b []byte) int {
	for i := 1; i < utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if utf8.FullRune(b[len(b)-i:]) {
				return 0
			}
			return i
		}
	}
	return 0
}
