package server

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flynn/noise"

	"github.com/parleyim/parley/protocol/secure"
)

// Files of the server's Noise keys in the data directory.
const (
	// NoiseKeyFile holds the static private key, hex, one line (0600).
	NoiseKeyFile = "noise_key"
	// NoiseRetiredFile holds the keys retired by RotateNoiseKey, one per
	// line: the private key in hex and when it was retired (RFC 3339).
	NoiseRetiredFile = "noise_key.retired"
)

// ErrNoiseKey: a key file is unreadable.
var ErrNoiseKey = errors.New("server: bad noise key file")

// LoadNoiseKeys reads the server's Noise keys from dir, making a new static
// key there on first start (created reports it). Retired keys are kept
// for overlap after their retirement: IK clients that pinned one are told
// the new key; later they are ignored.
func LoadNoiseKeys(dir string, overlap time.Duration, now time.Time) (keys *NoiseKeys, created bool, err error) {
	path := filepath.Join(dir, NoiseKeyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err := secure.NewKey(nil)
		if err != nil {
			return nil, false, err
		}
		if err := writeKeyFile(dir, NoiseKeyFile, hex.EncodeToString(key.Private)+"\n"); err != nil {
			return nil, false, err
		}
		return &NoiseKeys{Static: key}, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	static, err := parseKey(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, false, fmt.Errorf("%w: %s: %v", ErrNoiseKey, path, err)
	}
	keys = &NoiseKeys{Static: static}
	retired, err := readRetired(dir)
	if err != nil {
		return nil, false, err
	}
	for _, r := range retired {
		if now.Sub(r.at) < overlap {
			keys.Retired = append(keys.Retired, r.key)
		}
	}
	return keys, false, nil
}

// RotateNoiseKey makes a new static key in dir and retires the current
// one (dropping retired keys past overlap). The running server takes it at
// its next start.
func RotateNoiseKey(dir string, overlap time.Duration, now time.Time) (*NoiseKeys, error) {
	old, _, err := LoadNoiseKeys(dir, overlap, now)
	if err != nil {
		return nil, err
	}
	retired, err := readRetired(dir)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, r := range retired {
		if now.Sub(r.at) < overlap {
			fmt.Fprintf(&b, "%s %s\n", hex.EncodeToString(r.key.Private), r.at.UTC().Format(time.RFC3339))
		}
	}
	fmt.Fprintf(&b, "%s %s\n", hex.EncodeToString(old.Static.Private), now.UTC().Format(time.RFC3339))
	key, err := secure.NewKey(nil)
	if err != nil {
		return nil, err
	}
	if err := writeKeyFile(dir, NoiseRetiredFile, b.String()); err != nil {
		return nil, err
	}
	if err := writeKeyFile(dir, NoiseKeyFile, hex.EncodeToString(key.Private)+"\n"); err != nil {
		return nil, err
	}
	keys, _, err := LoadNoiseKeys(dir, overlap, now)
	return keys, err
}

type retiredKey struct {
	key noise.DHKey
	at  time.Time
}

func readRetired(dir string) ([]retiredKey, error) {
	path := filepath.Join(dir, NoiseRetiredFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []retiredKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: %s:%d: want a key and a time", ErrNoiseKey, path, line)
		}
		key, err := parseKey(f[0])
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v", ErrNoiseKey, path, line, err)
		}
		at, err := time.Parse(time.RFC3339, f[1])
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v", ErrNoiseKey, path, line, err)
		}
		out = append(out, retiredKey{key, at})
	}
	return out, sc.Err()
}

func parseKey(s string) (noise.DHKey, error) {
	priv, err := hex.DecodeString(s)
	if err != nil {
		return noise.DHKey{}, err
	}
	return secure.KeyFromPrivate(priv)
}

// writeKeyFile replaces dir/name atomically, readable by the owner only.
func writeKeyFile(dir, name, content string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}

// NoiseKey is the public static key the server presents.
func (s *Server) NoiseKey() []byte { return s.noiseKeys.Static.Public }
