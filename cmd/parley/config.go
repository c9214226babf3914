package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/parleyim/parley/cmd/parley/ui"
	"github.com/parleyim/parley/protocol"
)

// config is what parley keeps between runs: the session of the last login
// or registration, for the server it was made on.
type config struct {
	Addr         string `json:"addr,omitempty"`
	UserID       int64  `json:"user_id,omitempty"`
	Username     string `json:"username,omitempty"`
	Token        string `json:"token,omitempty"`
	TokenExpires int64  `json:"token_expires,omitempty"` // Unix ms
}

// sessionOf is the config that keeps a login to addr.
func sessionOf(addr string, ok protocol.LoginOK) config {
	return config{Addr: addr, UserID: ok.UserID, Username: ok.Username, Token: ok.Token, TokenExpires: ok.TokenExpires}
}

// defaultConfigPath is parley/config.json in the user's config directory
// ($XDG_CONFIG_HOME or ~/.config on Linux).
func defaultConfigPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "parley", "config.json")
}

// loadConfig reads the config file; a missing one is an empty config.
func loadConfig(path string) (config, error) {
	var c config
	if path == "" {
		return c, errors.New("no config directory ($HOME is not set): pass --config FILE or set PARLEY_CONFIG")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return config{}, fmt.Errorf("%s is not a parley config file: %v", path, err)
	}
	return c, nil
}

// saveConfig writes c to path, readable by its owner only (0600, in a
// 0700 directory if it has to make one). It writes a new file and renames
// it over the old, so a crash leaves one or the other (ui.WriteFileAtomic).
func saveConfig(path string, c config) error {
	if path == "" {
		return errors.New("no config directory ($HOME is not set): pass --config FILE or set PARLEY_CONFIG")
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return ui.WriteFileAtomic(path, b)
}
