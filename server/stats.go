package server

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// The server's figures are its Metrics (metrics.go), served by parleyd's
// /metrics.

// RSS is this process's resident set size in bytes (VmRSS of
// /proc/self/status); 0 where that is not available.
func RSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
