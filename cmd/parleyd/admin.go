package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/parleyim/parley/storage"
)

const adminUsage = `usage:
  parleyd admin ban   --user NAME --days N [--reason TEXT]
  parleyd admin unban --user NAME
  parleyd admin bans
The admin commands work on the server's store (the same --config,
--data-dir or PARLEY_* settings); a running server kicks a banned user within seconds.
The pebble store admits one process: stop the server before an admin command.`

// admin runs an admin command against the store and writes its result to
// stdout.
func admin(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(adminUsage)
	}
	cmd, args := args[0], args[1:]
	var so storeOptions
	fs := flag.NewFlagSet("parleyd admin "+cmd, flag.ContinueOnError)
	fs.String("config", "", "the server's TOML config file (PARLEY_CONFIG)")
	so.register(fs)
	user := fs.String("user", "", "username")
	days := fs.Float64("days", 0, "ban length in days (fractions allowed)")
	reason := fs.String("reason", "", "why, for the record")
	if _, err := configure(fs, args, lookupEnv, true, "user", "days", "reason"); err != nil {
		return err
	}
	needUser := cmd == "ban" || cmd == "unban"
	switch {
	case cmd != "ban" && cmd != "unban" && cmd != "bans":
		return fmt.Errorf("unknown admin command %q\n%s", cmd, adminUsage)
	case needUser && *user == "":
		return fmt.Errorf("%s needs --user", cmd)
	case cmd == "ban" && *days <= 0:
		return errors.New("ban needs --days above 0")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := so.open(nil, slog.New(slog.DiscardHandler))
	if err != nil && so.kind == "pebble" {
		// Pebble locks its directory to one process.
		return fmt.Errorf("%w (if a running parleyd has this data dir open, stop it first: the pebble store admits one process)", err)
	}
	if err != nil {
		return err
	}
	defer store.Close()

	var u storage.User
	if needUser {
		if u, err = store.UserByName(ctx, *user); errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no user %q", *user)
		} else if err != nil {
			return err
		}
	}
	now := time.Now()
	switch cmd {
	case "ban":
		until := now.Add(time.Duration(*days * float64(24*time.Hour))).Truncate(time.Millisecond)
		if err := store.BanUser(ctx, u.ID, until, *reason, now); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "banned %s (id %d) until %s\n", u.Username, u.ID, until.UTC().Format(time.RFC3339))
	case "unban":
		if err := store.UnbanUser(ctx, u.ID); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "unbanned %s (id %d)\n", u.Username, u.ID)
	case "bans":
		bans, err := store.ActiveBans(ctx, now)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tID\tUNTIL\tREASON")
		for _, b := range bans {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", b.Username, b.UserID, b.Until.UTC().Format(time.RFC3339), b.Reason)
		}
		return tw.Flush()
	}
	return nil
}
