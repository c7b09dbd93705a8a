// Package storetest gives tests a fresh PostgreSQL database, so that every
// store test runs against both engines.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// DSNEnv names the variable holding a PostgreSQL DSN with the right to
// create databases. `make test` starts Debian's PostgreSQL on loopback and
// sets it.
const DSNEnv = "NIMBUS_TEST_POSTGRES_DSN"

// Postgres creates an empty database for the test and drops it when the
// test ends. Without NIMBUS_TEST_POSTGRES_DSN the test is skipped, saying so.
func Postgres(t testing.TB) *store.DB {
	t.Helper()
	dsn := os.Getenv(DSNEnv)
	if dsn == "" {
		t.Skip("no PostgreSQL: set " + DSNEnv + " (make test does) to run this against PostgreSQL")
	}
	ctx := context.Background()
	admin, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to test PostgreSQL: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "nimbus_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("create test database: %v", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", DSNEnv, err)
	}
	u.Path = "/" + name
	db, err := store.Open(ctx, u.String())
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	t.Cleanup(func() {
		db.Close()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
		admin.Close()
	})
	return db
}

// Case is one behaviour test a package runs again on PostgreSQL.
type Case struct {
	Name string
	Fn   func(*testing.T)
}

// RunOnPostgres runs cases again with engineEnv set to "postgres", which
// the package's harness reads to open its database on PostgreSQL. It is
// skipped, saying why, without a DSN, or when the whole package already
// runs on PostgreSQL (then every test is on it already).
func RunOnPostgres(t *testing.T, engineEnv string, cases []Case) {
	if os.Getenv(DSNEnv) == "" {
		t.Skip("no PostgreSQL: set " + DSNEnv + " (make test does) to run the suite against PostgreSQL")
	}
	if os.Getenv(engineEnv) == "postgres" {
		t.Skip("the whole suite is already running on PostgreSQL")
	}
	t.Setenv(engineEnv, "postgres")
	for _, c := range cases {
		t.Run(c.Name, c.Fn)
	}
}
