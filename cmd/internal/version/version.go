// Package version is the build stamp of Parley's commands: `--version`.
//
// Release builds set the variables with the linker (make release):
//
//	go build -ldflags "-X github.com/parleyim/parley/cmd/internal/version.Version=v1.2.0 \
//	  -X github.com/parleyim/parley/cmd/internal/version.Commit=abc1234 \
//	  -X github.com/parleyim/parley/cmd/internal/version.Date=2026-12-04T10:00:00Z"
//
// Unstamped builds fall back to what the Go toolchain recorded in the
// binary (runtime/debug.ReadBuildInfo): the module version and the VCS
// revision and time.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by -ldflags -X at build time; empty in unstamped builds.
var (
	Version string
	Commit  string
	Date    string
)

// Info is the version of this binary.
type Info struct {
	Version string // v1.2.0, or a pseudo-version, or "(devel)"
	Commit  string // VCS revision, possibly with "-dirty"
	Date    string // build or commit time, RFC 3339
	Go      string // runtime.Version()
}

// Get returns the stamped version, filling what the stamp left out from
// the build information.
func Get() Info {
	return get(Version, Commit, Date, debug.ReadBuildInfo)
}

func get(v, commit, date string, read func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: v, Commit: commit, Date: date, Go: runtime.Version()}
	if bi, ok := read(); ok {
		var modified bool
		var rev, when string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if in.Version == "" {
			in.Version = bi.Main.Version
		}
		if in.Commit == "" && rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if modified {
				rev += "-dirty"
			}
			in.Commit = rev
		}
		if in.Date == "" {
			in.Date = when
		}
	}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	return in
}

// String is the line `NAME --version` prints.
func String(name string) string {
	in := Get()
	s := name + " " + in.Version
	if in.Commit != "" {
		s += " commit " + in.Commit
	}
	if in.Date != "" {
		s += " built " + in.Date
	}
	return s + fmt.Sprintf(" %s %s/%s", in.Go, runtime.GOOS, runtime.GOARCH)
}

// Requested reports whether args ask for the version: a --version (or
// -version) before any "--".
func Requested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--version", "-version":
			return true
		}
	}
	return false
}
