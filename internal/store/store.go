// Package store is Nimbus's SQL access: one *DB over embedded SQLite (the
// default, a single file in the data dir) or PostgreSQL (selected by DSN, for
// control planes spread over several hosts), with ordered, versioned
// migrations per component.
//
// Queries are written once with '?' placeholders and portable SQL; the DB
// rewrites placeholders for PostgreSQL. Constraint violations are mapped to
// ErrConflict so services can answer 409 without knowing the engine.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect is the SQL engine behind a DB.
type Dialect int

const (
	// SQLite is the embedded default.
	SQLite Dialect = iota
	// Postgres is PostgreSQL or a compatible distributed database.
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// ErrNotFound is returned by helpers when a row does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict wraps unique and foreign-key violations.
var ErrConflict = errors.New("conflict")

// DB is a database handle that knows its dialect.
type DB struct {
	sql     *sql.DB
	dialect Dialect
}

// Open connects to dsn. A DSN starting with postgres:// or postgresql://
// selects PostgreSQL; "sqlite://PATH" or a bare path selects SQLite, created
// if missing, in WAL mode with a busy timeout so concurrent writers wait
// instead of failing.
func Open(ctx context.Context, dsn string) (*DB, error) {
	var db *DB
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		sdb, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		sdb.SetMaxOpenConns(32)
		sdb.SetMaxIdleConns(8)
		sdb.SetConnMaxIdleTime(5 * time.Minute)
		db = &DB{sql: sdb, dialect: Postgres}
	default:
		path := strings.TrimPrefix(dsn, "sqlite://")
		if path == "" {
			return nil, errors.New("open sqlite: empty path")
		}
		if path != ":memory:" {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, fmt.Errorf("open sqlite: %w", err)
			}
		}
		q := url.Values{}
		for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
			q.Add("_pragma", p)
		}
		// Transactions take the write lock up front so that two writers
		// never deadlock upgrading from a read lock.
		q.Set("_txlock", "immediate")
		sdb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		sdb.SetMaxOpenConns(8)
		sdb.SetMaxIdleConns(8)
		db = &DB{sql: sdb, dialect: SQLite}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.sql.PingContext(pctx); err != nil {
		db.sql.Close()
		return nil, fmt.Errorf("connect %s: %w", db.dialect, err)
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// SQL exposes the underlying handle for tools that need it.
func (db *DB) SQL() *sql.DB { return db.sql }

// Rebind rewrites '?' placeholders to $1, $2, ... for PostgreSQL. Question
// marks inside single-quoted literals are left alone.
func (db *DB) Rebind(q string) string {
	if db.dialect != Postgres {
		return q
	}
	return RebindPostgres(q)
}

// RebindPostgres rewrites '?' placeholders outside quotes to $n.
func RebindPostgres(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	inQuote := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			inQuote = !inQuote
			b.WriteByte(c)
		case c == '?' && !inQuote:
			n++
			fmt.Fprintf(&b, "$%d", n)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Querier is what both *DB and *Tx offer, so query helpers take either.
type Querier interface {
	Exec(ctx context.Context, q string, args ...any) (sql.Result, error)
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
	Dialect() Dialect
}

// Exec runs a statement, mapping constraint violations to ErrConflict.
func (db *DB) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := db.sql.ExecContext(ctx, db.Rebind(q), args...)
	return res, classify(err)
}

// Query runs a query.
func (db *DB) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.sql.QueryContext(ctx, db.Rebind(q), args...)
}

// QueryRow runs a query expected to return at most one row.
func (db *DB) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return db.sql.QueryRowContext(ctx, db.Rebind(q), args...)
}

// Tx is a transaction that rebinds like its DB.
type Tx struct {
	tx *sql.Tx
	db *DB
}

// Dialect returns the engine of the transaction's database.
func (tx *Tx) Dialect() Dialect { return tx.db.dialect }

// Dialect returns the engine of the database.
func (db *DB) Dialect() Dialect { return db.dialect }

// Exec runs a statement in the transaction.
func (tx *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := tx.tx.ExecContext(ctx, tx.db.Rebind(q), args...)
	return res, classify(err)
}

// Query runs a query in the transaction.
func (tx *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return tx.tx.QueryContext(ctx, tx.db.Rebind(q), args...)
}

// QueryRow runs a single-row query in the transaction.
func (tx *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return tx.tx.QueryRowContext(ctx, tx.db.Rebind(q), args...)
}

// InTx runs fn in a transaction, committing when it returns nil and rolling
// back otherwise, so a failed request leaves nothing half-applied.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	stx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", classify(err))
	}
	tx := &Tx{tx: stx, db: db}
	defer func() {
		if p := recover(); p != nil {
			_ = stx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = stx.Rollback()
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", classify(err))
	}
	return nil
}

// classify wraps engine-specific constraint violations in ErrConflict.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 23505 unique_violation, 23503 foreign_key_violation.
		if pgErr.Code == "23505" || pgErr.Code == "23503" {
			return fmt.Errorf("%w: %s", ErrConflict, pgErr.Message)
		}
		return err
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		switch sqErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %s", ErrConflict, sqErr.Error())
		}
	}
	return err
}

// IsConflict reports whether err is a constraint violation.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }
