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
)

const adminUsage = `usage:
  parleyd admin ban   --user NAME --days N [--reason TEXT]
  parleyd admin unban --user NAME
  parleyd admin bans
The admin commands work on the server's store (the same --config,
--data-dir or PARLEY_* settings); a running server kicks a banned user within seconds.
The pebble store admits one process: while parleyd runs, give its admin endpoint,
--server HOST:PORT (its --metrics-listen), and its --admin-token (PARLEY_ADMIN_TOKEN).`

// admin runs an admin command against the store, or a running server's
// admin endpoint, and writes its result to stdout.
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
	addr := fs.String("server", "", "the admin endpoint (--metrics-listen) of a running parleyd, host:port: go through it rather than open the store")
	token := fs.String("admin-token", "", "the server's admin token, for --server")
	if _, err := configure(fs, args, lookupEnv, true, "user", "days", "reason", "server"); err != nil {
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
	var b bans
	if *addr != "" {
		b = httpBans{base: "http://" + *addr, token: *token}
	} else {
		store, err := so.open(nil, nil, slog.New(slog.DiscardHandler))
		if err != nil && so.kind == "pebble" {
			// Pebble locks its directory to one process.
			return fmt.Errorf("%w (if a running parleyd has this data dir open, give its admin endpoint: --server HOST:PORT and --admin-token)", err)
		}
		if err != nil {
			return err
		}
		defer store.Close()
		b = storeBans{store}
	}

	switch cmd {
	case "ban":
		until := time.Now().Add(time.Duration(*days * float64(24*time.Hour))).Truncate(time.Millisecond)
		res, err := b.Ban(ctx, *user, until, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "banned %s (id %d) until %s\n", res.User, res.ID, res.Until.UTC().Format(time.RFC3339))
	case "unban":
		res, err := b.Unban(ctx, *user)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "unbanned %s (id %d)\n", res.User, res.ID)
	case "bans":
		list, err := b.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tID\tUNTIL\tREASON")
		for _, b := range list {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", b.Username, b.UserID, b.Until.UTC().Format(time.RFC3339), b.Reason)
		}
		return tw.Flush()
	}
	return nil
}
