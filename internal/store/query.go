package store

import (
	"context"
	"database/sql"
	"errors"
)

// Scanner is one result row: *sql.Row and *sql.Rows both satisfy it. It is
// an alias, not a named type, so existing scan functions declared as
// func(row interface{ Scan(...any) error }) (T, error) fit QueryAll as they
// are, and the same function serves QueryRow and QueryAll alike.
type Scanner = interface{ Scan(dest ...any) error }

// QueryAll runs query on q and scans every row with scan, in order. The
// rows are read to the end and closed before it returns, so follow-up
// queries on the results do not hold a second pooled connection. It returns
// nil, not an empty slice, when there are no rows. Errors come back as the
// driver or scan gave them; callers add their own context.
func QueryAll[T any](ctx context.Context, q Querier, scan func(Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// QueryStrings runs a query selecting a single text column (ids, tags,
// hashes) and returns its values in order; nil when there are no rows.
func QueryStrings(ctx context.Context, q Querier, query string, args ...any) ([]string, error) {
	return QueryAll(ctx, q, scanString, query, args...)
}

// scanString scans a row of one text column.
func scanString(row Scanner) (string, error) {
	var s string
	err := row.Scan(&s)
	return s, err
}

// QueryOne runs a query expected to return at most one row and scans it
// with scan. No row is ErrNotFound, so callers can tell "absent" from a
// failure without importing database/sql.
func QueryOne[T any](ctx context.Context, q Querier, scan func(Scanner) (T, error), query string, args ...any) (T, error) {
	v, err := scan(q.QueryRow(ctx, query, args...))
	if err != nil {
		var zero T
		if errors.Is(err, sql.ErrNoRows) {
			return zero, ErrNotFound
		}
		return zero, err
	}
	return v, nil
}
