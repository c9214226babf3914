// Package mysqltest gives tests a fresh database on the MariaDB that
// `make services` runs (or the server PARLEY_MYSQL_DSN names).
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// DefaultDSN is the MariaDB of `make services`.
const DefaultDSN = "parley:parley@tcp(127.0.0.1:3306)/parley_test?parseTime=true&charset=utf8mb4"

// BaseDSN is PARLEY_MYSQL_DSN, or DefaultDSN.
func BaseDSN() string {
	if dsn := os.Getenv("PARLEY_MYSQL_DSN"); dsn != "" {
		return dsn
	}
	return DefaultDSN
}

// DSN creates an empty database for one test, dropped when the test ends,
// and returns its DSN. The test fails if MariaDB cannot be reached: the
// services are part of the test setup, never a reason to skip.
func DSN(t testing.TB) string {
	t.Helper()
	cfg, err := driver.ParseDSN(BaseDSN())
	if err != nil {
		t.Fatalf("PARLEY_MYSQL_DSN: %v", err)
	}
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("MariaDB not reachable at %s: %v: run `make services`", cfg.Addr, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "parley_t_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}
