package client

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/parleyim/parley/protocol/secure"
)

// PinStore keeps the server keys a client pinned, by server address
// (trust on first use: docs/protocol.md, "Encryption").
type PinStore interface {
	// Pin returns the key pinned for addr, or nil if there is none.
	Pin(addr string) ([]byte, error)
	// SetPin pins key for addr, replacing any earlier pin.
	SetPin(addr string, key []byte) error
}

// ErrKeyChanged: the server at an address does not hold the key pinned for
// it. The connection is refused; if the change is expected, remove the pin.
var ErrKeyChanged = errors.New("client: the server's key changed")

// MemoryPins is a PinStore in memory: pins last as long as it does.
type MemoryPins struct {
	mu sync.Mutex
	m  map[string][]byte
}

var _ PinStore = (*MemoryPins)(nil)

// NewMemoryPins returns an empty MemoryPins.
func NewMemoryPins() *MemoryPins { return &MemoryPins{m: map[string][]byte{}} }

func (p *MemoryPins) Pin(addr string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[addr], nil
}

func (p *MemoryPins) SetPin(addr string, key []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[addr] = append([]byte(nil), key...)
	return nil
}

// FilePins is a PinStore in a text file like ssh's known_hosts: one line
// per address, "host:port base64-key". Lines it does not understand are
// kept as they are.
type FilePins struct {
	mu   sync.Mutex
	Path string
}

var _ PinStore = (*FilePins)(nil)

func (p *FilePins) Pin(addr string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	data, err := os.ReadFile(p.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == addr {
			key, err := base64.StdEncoding.DecodeString(f[1])
			if err != nil || len(key) != secure.KeySize {
				return nil, fmt.Errorf("client: %s: the pin of %s is not a key", p.Path, addr)
			}
			return key, nil
		}
	}
	return nil, sc.Err()
}

func (p *FilePins) SetPin(addr string, key []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	data, err := os.ReadFile(p.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var out strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == addr {
			continue
		}
		out.WriteString(sc.Text())
		out.WriteString("\n")
	}
	fmt.Fprintf(&out, "%s %s\n", addr, base64.StdEncoding.EncodeToString(key))
	if err := os.MkdirAll(filepath.Dir(p.Path), 0o700); err != nil {
		return err
	}
	tmp := p.Path + ".tmp"
	if err := os.WriteFile(tmp, []byte(out.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p.Path)
}
