package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestStampWinsOverBuildInfo(t *testing.T) {
	read := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261204-abcdef"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.time", Value: "2026-12-04T09:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}, true
	}
	if in := get("v1.2.0", "abc1234", "2026-12-04T10:00:00Z", read); in.Version != "v1.2.0" || in.Commit != "abc1234" || in.Date != "2026-12-04T10:00:00Z" {
		t.Fatalf("stamped: %+v", in)
	}
	in := get("", "", "", read)
	if in.Version != "v0.0.0-20261204-abcdef" || in.Commit != "0123456789ab-dirty" || in.Date != "2026-12-04T09:00:00Z" {
		t.Fatalf("from build info: %+v", in)
	}
	if in := get("", "", "", func() (*debug.BuildInfo, bool) { return nil, false }); in.Version != "(devel)" || in.Commit != "" {
		t.Fatalf("without build info: %+v", in)
	}
}

func TestRequested(t *testing.T) {
	for args, want := range map[string]bool{
		"--version": true, "-version": true, "--addr x --version": true,
		"": false, "send bob -- --version": false, "--versions": false,
	} {
		if got := Requested(strings.Fields(args)); got != want {
			t.Errorf("Requested(%q) = %v", args, got)
		}
	}
	if s := String("parleyd"); !strings.HasPrefix(s, "parleyd ") || !strings.Contains(s, "go1") {
		t.Fatalf("String: %q", s)
	}
}
