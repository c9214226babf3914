package main

import (
	"strings"
	"testing"
)

func TestVersionFlag(t *testing.T) {
	var out, errw strings.Builder
	if code := run([]string{"--addr", "127.0.0.1:1", "--version"}, strings.NewReader(""), &out, &errw); code != exitOK || !strings.HasPrefix(out.String(), "parley ") {
		t.Fatalf("--version: exit %d, out %q, err %q", code, out.String(), errw.String())
	}
}
