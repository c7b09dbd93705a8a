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
	stmts   *stmtCache // SQLite only: pgx keeps its own per connection
	// writer admits one transaction of this process at a time to SQLite,
	// which has one write lock (nil for PostgreSQL). Waiting here is
	// first come, first served; waiting in SQLite's busy handler is
	// polling with sleeps of up to 100 ms, and under a burst of writers a
	// transaction could miss every turn until its busy timeout ran out.
	writer chan struct{}
}

// busyTimeout is how long a SQLite writer waits for the write lock, in
// this process's queue and then in SQLite's busy handler (the lock may be
// held by another process on the same file).
const busyTimeout = 10 * time.Second

// ErrBusy is returned when a transaction waited busyTimeout for its turn
// to write; nothing of it was run, so it can be run again (IsBusy).
var ErrBusy = errors.New("database is busy: waited too long for the write lock")

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
		for _, p := range []string{fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()), "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
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
		db = &DB{sql: sdb, dialect: SQLite, stmts: newStmtCache(sdb), writer: make(chan struct{}, 1)}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.sql.PingContext(pctx); err != nil {
		db.sql.Close()
		return nil, fmt.Errorf("connect %s: %w", db.dialect, err)
	}
	return db, nil
}

// Close closes the database and its prepared statements.
func (db *DB) Close() error {
	db.stmts.close()
	return db.sql.Close()
}

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
	if st := db.stmts.get(ctx, q); st != nil {
		res, err := st.ExecContext(ctx, args...)
		return res, classify(err)
	}
	res, err := db.sql.ExecContext(ctx, db.Rebind(q), args...)
	return res, classify(err)
}

// Query runs a query.
func (db *DB) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := db.stmts.get(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.sql.QueryContext(ctx, db.Rebind(q), args...)
}

// QueryRow runs a query expected to return at most one row.
func (db *DB) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := db.stmts.get(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
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
	if st := tx.stmt(ctx, q); st != nil {
		res, err := st.ExecContext(ctx, args...)
		return res, classify(err)
	}
	res, err := tx.tx.ExecContext(ctx, tx.db.Rebind(q), args...)
	return res, classify(err)
}

// Query runs a query in the transaction.
func (tx *Tx) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := tx.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.tx.QueryContext(ctx, tx.db.Rebind(q), args...)
}

// QueryRow runs a single-row query in the transaction.
func (tx *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := tx.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.tx.QueryRowContext(ctx, tx.db.Rebind(q), args...)
}

// stmt is the cached statement for q bound to the transaction, which
// reuses the statement already prepared on the transaction's connection
// (nil: run q unprepared).
func (tx *Tx) stmt(ctx context.Context, q string) *sql.Stmt {
	st := tx.db.stmts.peek(q)
	if st == nil {
		return nil
	}
	return tx.tx.StmtContext(ctx, st)
}

// InTx runs fn in a transaction, committing when it returns nil and rolling
// back otherwise, so a failed request leaves nothing half-applied.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	if db.writer != nil {
		if err := db.awaitWriteTurn(ctx); err != nil {
			return err
		}
		defer func() { <-db.writer }()
	}
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

// awaitWriteTurn takes this process's SQLite write turn, or gives up
// with ErrBusy after busyTimeout, or with the context's error.
func (db *DB) awaitWriteTurn(ctx context.Context) error {
	select {
	case db.writer <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(busyTimeout)
	defer t.Stop()
	select {
	case db.writer <- struct{}{}:
		return nil
	case <-t.C:
		return fmt.Errorf("begin transaction: %w", ErrBusy)
	case <-ctx.Done():
		return fmt.Errorf("begin transaction: %w", ctx.Err())
	}
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
