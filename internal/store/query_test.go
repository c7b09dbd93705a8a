package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

type widget struct {
	ID, Name string
	Count    int
}

func scanWidget(row store.Scanner) (widget, error) {
	var w widget
	err := row.Scan(&w.ID, &w.Name, &w.Count)
	return w, err
}

func TestQueryHelpers(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.Migrate(ctx, "test", testMigrations); err != nil {
			t.Fatal(err)
		}
		for i, name := range []string{"beta", "alpha", "gamma"} {
			if _, err := db.Exec(ctx, `INSERT INTO widgets (id, name, count) VALUES (?, ?, ?)`, name[:1], name, i); err != nil {
				t.Fatal(err)
			}
		}

		all, err := store.QueryAll(ctx, db, scanWidget, `SELECT id, name, count FROM widgets WHERE count >= ? ORDER BY name`, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []widget{{"a", "alpha", 1}, {"b", "beta", 0}, {"g", "gamma", 2}}
		if !slices.Equal(all, want) {
			t.Fatalf("QueryAll = %v, want %v", all, want)
		}
		none, err := store.QueryAll(ctx, db, scanWidget, `SELECT id, name, count FROM widgets WHERE count > ?`, 99)
		if err != nil || none != nil {
			t.Fatalf("QueryAll with no rows = %v, %v; want nil, nil", none, err)
		}
		boom := errors.New("boom")
		if _, err := store.QueryAll(ctx, db, func(store.Scanner) (widget, error) { return widget{}, boom }, `SELECT id FROM widgets`); !errors.Is(err, boom) {
			t.Fatalf("QueryAll with a failing scan: err = %v, want %v", err, boom)
		}
		if _, err := store.QueryAll(ctx, db, scanWidget, `SELECT nope FROM widgets`); err == nil {
			t.Fatal("QueryAll with a bad query succeeded")
		}

		names, err := store.QueryStrings(ctx, db, `SELECT name FROM widgets ORDER BY count DESC`)
		if err != nil || !slices.Equal(names, []string{"gamma", "alpha", "beta"}) {
			t.Fatalf("QueryStrings = %v, %v", names, err)
		}

		w, err := store.QueryOne(ctx, db, scanWidget, `SELECT id, name, count FROM widgets WHERE id = ?`, "g")
		if err != nil || w != (widget{"g", "gamma", 2}) {
			t.Fatalf("QueryOne = %v, %v", w, err)
		}
		if _, err := store.QueryOne(ctx, db, scanWidget, `SELECT id, name, count FROM widgets WHERE id = ?`, "zz"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("QueryOne of a missing row: err = %v, want ErrNotFound", err)
		}

		// A transaction is a Querier too, and sees its own writes.
		err = db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO widgets (id, name) VALUES (?, ?)`, "d", "delta"); err != nil {
				return err
			}
			ids, err := store.QueryStrings(ctx, tx, `SELECT id FROM widgets ORDER BY id`)
			if err != nil {
				return err
			}
			if !slices.Equal(ids, []string{"a", "b", "d", "g"}) {
				t.Errorf("QueryStrings in a transaction = %v", ids)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
