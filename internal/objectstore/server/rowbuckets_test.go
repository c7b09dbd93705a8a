package server

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"
)

// bucketsFromRows computes the bucket hashes from every row, as
// replication did before they were kept in the database.
func bucketsFromRows(t *testing.T, db *sql.DB, kind string) map[string]string {
	t.Helper()
	rows, err := ReadDBRows(context.Background(), db, kind, nil)
	if err != nil {
		t.Fatal(err)
	}
	acc := map[string]*[md5.Size]byte{}
	for _, r := range rows {
		b, _ := json.Marshal(r)
		sum := md5.Sum(b)
		nameSum := md5.Sum([]byte(r.Name))
		k := hex.EncodeToString(nameSum[:1])
		if acc[k] == nil {
			acc[k] = new([md5.Size]byte)
		}
		for i := range sum {
			acc[k][i] ^= sum[i]
		}
	}
	out := map[string]string{}
	for k, v := range acc {
		out[k] = hex.EncodeToString(v[:])
	}
	return out
}

// dbOf opens the database of a kind on the node's device that belongs
// to the account.
func dbOf(t *testing.T, n *node, kind, account string) *sql.DB {
	t.Helper()
	dbs, err := ListDBs(n.dev, kind)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range dbs {
		db, err := OpenDB(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		var a string
		if err := db.QueryRow(`SELECT account FROM ` + kind + `_stat`).Scan(&a); err == nil && a == account {
			t.Cleanup(func() { db.Close() })
			return db
		}
		db.Close()
	}
	t.Fatalf("no %s database of account %s among %v", kind, account, dbs)
	return nil
}

// checkBuckets fails unless the stored bucket hashes are those of the
// rows, and reading rows by bucket gives exactly each bucket's rows.
func checkBuckets(t *testing.T, db *sql.DB, kind string, wantRows int) {
	t.Helper()
	ctx := context.Background()
	info, err := ReadDBInfo(ctx, db, kind)
	if err != nil {
		t.Fatal(err)
	}
	want := bucketsFromRows(t, db, kind)
	if !maps.Equal(info.Buckets, want) {
		t.Fatalf("stored bucket hashes %v, from the rows %v", info.Buckets, want)
	}
	all, err := ReadDBRows(ctx, db, kind, nil)
	if err != nil || len(all) != wantRows {
		t.Fatalf("%d rows (%v), want %d", len(all), err, wantRows)
	}
	total := 0
	for b := range want {
		rows, err := ReadDBRows(ctx, db, kind, []string{b})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if k := bucketKey(rowBucket(r.Name)); k != b {
				t.Fatalf("row %q of bucket %s read for bucket %s", r.Name, k, b)
			}
		}
		total += len(rows)
	}
	if total != wantRows {
		t.Fatalf("rows read bucket by bucket: %d, want %d", total, wantRows)
	}
}

// TestRowBucketsFollowEveryChange: inserts, newer and older updates,
// tombstones, replication merges and account rows all keep the stored
// bucket hashes equal to the hashes of the rows.
func TestRowBucketsFollowEveryChange(t *testing.T) {
	n := newNode(t)
	n.putAccount(t, "a")
	n.putContainer(t, "a", "c")
	for i := range 40 {
		n.putRow(t, "a", "c", fmt.Sprintf("o%02d", i), "10")
	}
	n.putRow(t, "a", "c", "o03", "99") // newer: replaces
	old := DBRow{Name: "o04", Created: "0000000001.00000", Size: 1, ContentType: "x/old", ETag: md5hex("old")}
	gone := DBRow{Name: "o05", Created: n.ts(), Deleted: true}
	merged := DBRow{Name: "m", Created: n.ts(), Size: 3, ContentType: "text/plain", ETag: md5hex("m")}
	b, _ := json.Marshal(ReplicateRequest{Op: "merge", Info: DBInfo{Account: "a", Container: "c", Put: n.ts(), Delete: "0",
		StatusChanged: n.ts()}, Rows: []DBRow{old, gone, merged}})
	expectStatus(t, do(t, MethodReplicate, n.contURL+"/sda/1/a/c", nil, string(b)), http.StatusNoContent, "merge rows")
	checkBuckets(t, dbOf(t, n, KindContainer, "a"), KindContainer, 41)

	// Account rows, on an account no container reports to meanwhile.
	n.putAccount(t, "b")
	var rows []DBRow
	for i := range 20 {
		rows = append(rows, DBRow{Name: fmt.Sprintf("c%02d", i), Put: n.ts(), Delete: "0", Objects: int64(i), Bytes: int64(10 * i)})
	}
	mergeAccount := func(rows []DBRow) {
		t.Helper()
		b, _ := json.Marshal(ReplicateRequest{Op: "merge", Info: DBInfo{Account: "b", Put: n.ts(), Delete: "0", StatusChanged: n.ts()}, Rows: rows})
		expectStatus(t, do(t, MethodReplicate, n.acctURL+"/sda/2/b", nil, string(b)), http.StatusNoContent, "merge account rows")
	}
	mergeAccount(rows)
	// New counts for one, a deletion of another, one stale report.
	mergeAccount([]DBRow{{Name: "c01", Put: rows[1].Put, Delete: "0", Objects: 7, Bytes: 70},
		{Name: "c02", Put: rows[2].Put, Delete: n.ts()}, {Name: "c03", Put: "0000000001.00000", Delete: "0", Objects: 99}})
	checkBuckets(t, dbOf(t, n, KindAccount, "b"), KindAccount, 20)
}

// TestRowBucketsMigrateOldDatabases: a database made before row buckets
// gets its bucket column and hashes on first open, computed from its rows,
// and later changes keep them right.
func TestRowBucketsMigrateOldDatabases(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	for i := range 30 {
		n.putRow(t, "a", "c", fmt.Sprintf("o%02d", i), "10")
	}
	dbs, err := ListDBs(n.dev, KindContainer)
	if err != nil || len(dbs) != 1 {
		t.Fatalf("container databases: %v, %v", dbs, err)
	}
	// Back to the schema of before: no index, table or column.
	raw, err := sql.Open("sqlite", sqliteDSN(dbs[0].Path, "WAL", "FULL"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP INDEX ix_object_bucket`, `DROP TABLE row_bucket`, `ALTER TABLE object DROP COLUMN bucket`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	// A new container server, as after an upgrade: its first use migrates.
	cs, err := NewContainerServer(n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.cont = cs
	n.putRow(t, "a", "c", "after", "1")
	db := dbOf(t, n, KindContainer, "a")
	var unset int
	if err := db.QueryRow(`SELECT count(*) FROM object WHERE bucket < 0`).Scan(&unset); err != nil || unset != 0 {
		t.Fatalf("%d rows without a bucket after the migration (%v)", unset, err)
	}
	checkBuckets(t, db, KindContainer, 31)
	names, _ := ReadDBRows(context.Background(), db, KindContainer, []string{"zz", "1", "100"})
	if len(names) != 0 {
		t.Fatalf("rows for bucket names that are not buckets: %v", names)
	}
}

// TestBucketsWhere: what the bucket filter lets through.
func TestBucketsWhere(t *testing.T) {
	where, args := bucketsWhere([]string{"00", "ff", "0g", "abc", "7"})
	if where != "bucket IN (?, ?)" || !slices.Equal(args, []any{0, 255}) {
		t.Fatalf("bucketsWhere = %q %v", where, args)
	}
	if where, args := bucketsWhere(nil); where != "0" || args != nil {
		t.Fatalf("no buckets: %q %v", where, args)
	}
}

// TestReclaimDBRows: deleted rows older than the cutoff go, with their
// bucket hashes; live rows, however old, and recent deletions stay.
func TestReclaimDBRows(t *testing.T) {
	n := newNode(t)
	// The container's account is not the one whose rows are checked:
	// the container's own report to it may land at any time.
	n.putAccount(t, "b")
	n.putContainer(t, "a", "c")
	old := "1600000000.00000" // September 2020
	rows := []DBRow{
		{Name: "live-old", Created: old, Size: 1, ContentType: "text/plain", ETag: md5hex("x")},
		{Name: "gone-old", Created: old, Deleted: true},
		{Name: "gone-new", Created: n.ts(), Deleted: true},
		{Name: "live-new", Created: n.ts(), Size: 2, ContentType: "text/plain", ETag: md5hex("y")},
	}
	b, _ := json.Marshal(ReplicateRequest{Op: "merge", Info: DBInfo{Account: "a", Container: "c", Put: n.ts(), Delete: "0",
		StatusChanged: n.ts()}, Rows: rows})
	expectStatus(t, do(t, MethodReplicate, n.contURL+"/sda/1/a/c", nil, string(b)), http.StatusNoContent, "merge rows")
	acctRows := []DBRow{
		{Name: "c-old-deleted", Put: old, Delete: "1600000001.00000", Deleted: true},
		{Name: "c-new-deleted", Put: old, Delete: n.ts(), Deleted: true},
		{Name: "c-old-live", Put: old, Delete: "0", Objects: 3, Bytes: 30},
	}
	b, _ = json.Marshal(ReplicateRequest{Op: "merge", Info: DBInfo{Account: "b", Put: n.ts(), Delete: "0", StatusChanged: n.ts()}, Rows: acctRows})
	expectStatus(t, do(t, MethodReplicate, n.acctURL+"/sda/2/b", nil, string(b)), http.StatusNoContent, "merge account rows")

	cutoff := time.Now().Add(-7 * 24 * time.Hour)
	for _, tc := range []struct {
		kind, account string
		want          []string
	}{
		{KindContainer, "a", []string{"gone-new", "live-new", "live-old"}},
		{KindAccount, "b", []string{"c-new-deleted", "c-old-live"}},
	} {
		db := dbOf(t, n, tc.kind, tc.account)
		removed, err := ReclaimDBRows(context.Background(), db, tc.kind, cutoff)
		if err != nil || removed != 1 {
			t.Fatalf("%s: reclaimed %d rows (%v), want 1", tc.kind, removed, err)
		}
		left, err := ReadDBRows(context.Background(), db, tc.kind, nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range left {
			names = append(names, r.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, tc.want) {
			t.Errorf("%s rows after the reclaim: %v, want %v", tc.kind, names, tc.want)
		}
		checkBuckets(t, db, tc.kind, len(tc.want))
		if again, err := ReclaimDBRows(context.Background(), db, tc.kind, cutoff); err != nil || again != 0 {
			t.Errorf("%s: a second reclaim removed %d (%v)", tc.kind, again, err)
		}
	}
}
