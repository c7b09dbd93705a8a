package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"modernc.org/sqlite"
)

// Row buckets: what replication compares (see replicate_db.go).
//
// Each row of a container's object table or an account's container table
// belongs to one of 256 buckets, the first byte of the md5 of its name,
// and a bucket's hash is the XOR of the md5s of its rows (as DBRow JSON).
// Both are kept in the database and updated in the transaction that
// changes a row: the bucket in a column of the row, with an index, and
// the hashes in the row_bucket table. A replication pass then reads 256
// hashes per database instead of every row, and the rows of the buckets
// that differ through the index. Before, every pass read, encoded and
// hashed every row of every database three times (its own pass and each
// peer's request): for a container of a million objects, seconds of CPU
// every 30 s on each replica.

// rowBucketSchema is what a database needs for row buckets beyond its
// kind's base schema; createDB runs it for new databases and
// migrateRowBuckets adds it to older ones.
func rowBucketSchema(table string) []string {
	return []string{
		`CREATE TABLE row_bucket (bucket INTEGER PRIMARY KEY, hash BLOB NOT NULL)`,
		`CREATE INDEX ix_` + table + `_bucket ON ` + table + ` (bucket)`,
	}
}

// rowBucket is the bucket of a row name.
func rowBucket(name string) int {
	sum := md5.Sum([]byte(name))
	return int(sum[0])
}

var zeroHash [md5.Size]byte

// bucketKey is a bucket's name in DBInfo.Buckets.
func bucketKey(b int) string { return hex.EncodeToString([]byte{byte(b)}) }

// rowHash is a row's contribution to its bucket's hash.
func rowHash(r DBRow) [md5.Size]byte {
	b, _ := json.Marshal(r)
	return md5.Sum(b)
}

// bucketDelta collects the changes of one transaction to bucket hashes.
type bucketDelta map[int]*[md5.Size]byte

// flip XORs r's hash into its bucket: once to add the row, again to
// remove it.
func (d bucketDelta) flip(r DBRow) {
	h := rowHash(r)
	b := rowBucket(r.Name)
	acc := d[b]
	if acc == nil {
		acc = new([md5.Size]byte)
		d[b] = acc
	}
	for i := range acc {
		acc[i] ^= h[i]
	}
}

// bucketPutQuery XORs a change into a bucket's stored hash, or stores it
// for a bucket not seen before: one statement per bucket, no read.
const bucketPutQuery = `INSERT INTO row_bucket (bucket, hash) VALUES (?, ?)
	ON CONFLICT (bucket) DO UPDATE SET hash = nimbus_xor(hash, excluded.hash)`

// nimbus_xor(a, b) is the byte-wise XOR of two blobs of one length, for
// bucketPutQuery. SQLite functions registered here exist in this
// process only; nothing in a database's schema uses it, so another
// program can still read and write the files.
func init() {
	sqlite.MustRegisterDeterministicScalarFunction("nimbus_xor", 2, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		a, _ := args[0].([]byte)
		b, _ := args[1].([]byte)
		if len(a) != len(b) {
			return nil, fmt.Errorf("nimbus_xor: blobs of %d and %d bytes", len(a), len(b))
		}
		out := make([]byte, len(a))
		for i := range a {
			out[i] = a[i] ^ b[i]
		}
		return out, nil
	})
}

// apply XORs the collected changes into the stored hashes with put, a
// statement of bucketPutQuery.
func (d bucketDelta) apply(ctx context.Context, put *sql.Stmt) error {
	for b, delta := range d {
		if _, err := put.ExecContext(ctx, b, delta[:]); err != nil {
			return fmt.Errorf("update bucket hash: %w", err)
		}
	}
	return nil
}

// prepareBucketPut prepares bucketPutQuery on tx.
func prepareBucketPut(ctx context.Context, tx *sql.Tx) (*sql.Stmt, error) {
	return tx.PrepareContext(ctx, bucketPutQuery)
}

// readBucketHashes reads the stored bucket hashes. A bucket without rows
// (never used, or emptied by ReclaimDBRows: its hash is all zeros) is
// absent, as it is on a peer that never had rows there.
func readBucketHashes(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rs, err := db.QueryContext(ctx, `SELECT bucket, hash FROM row_bucket`)
	if err != nil {
		return nil, fmt.Errorf("read bucket hashes: %w", err)
	}
	defer rs.Close()
	out := map[string]string{}
	for rs.Next() {
		var b int
		var h []byte
		if err := rs.Scan(&b, &h); err != nil {
			return nil, fmt.Errorf("read bucket hashes: %w", err)
		}
		if !bytes.Equal(h, zeroHash[:]) {
			out[bucketKey(b)] = hex.EncodeToString(h)
		}
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read bucket hashes: %w", err)
	}
	return out, nil
}

// migrateRowBuckets gives a database made before row buckets its bucket
// column, index and hashes, computed from its rows in one transaction;
// it does nothing for a database that has them. Every handle that
// changes rows runs it before its first change.
func migrateRowBuckets(ctx context.Context, db *sql.DB) error {
	return inTx(ctx, db, func(tx *sql.Tx) error {
		var kind string
		var done bool
		rs, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('object', 'container', 'row_bucket')`)
		if err != nil {
			return err
		}
		for rs.Next() {
			var name string
			if err := rs.Scan(&name); err != nil {
				rs.Close()
				return err
			}
			switch name {
			case "object":
				kind = KindContainer
			case "container":
				kind = KindAccount
			case "row_bucket":
				done = true
			}
		}
		rs.Close()
		if done || kind == "" {
			return nil
		}
		table := rowTable(kind)
		if _, err := tx.ExecContext(ctx, `ALTER TABLE `+table+` ADD COLUMN bucket INTEGER NOT NULL DEFAULT -1`); err != nil {
			return fmt.Errorf("add bucket column: %w", err)
		}
		for _, q := range rowBucketSchema(table) {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("add row buckets: %w", err)
			}
		}
		rows, ids, err := scanDBRows(ctx, tx, kind, "")
		if err != nil {
			return err
		}
		set, err := tx.PrepareContext(ctx, `UPDATE `+table+` SET bucket = ? WHERE ROWID = ?`)
		if err != nil {
			return err
		}
		delta := bucketDelta{}
		for i, r := range rows {
			if _, err := set.ExecContext(ctx, rowBucket(r.Name), ids[i]); err != nil {
				return fmt.Errorf("set row bucket: %w", err)
			}
			delta.flip(r)
		}
		put, err := prepareBucketPut(ctx, tx)
		if err != nil {
			return err
		}
		return delta.apply(ctx, put)
	})
}

// rowTable is the table of a kind's rows.
func rowTable(kind string) string {
	if kind == KindAccount {
		return "container"
	}
	return "object"
}

// scanDBRows reads the rows of a kind's table, with their ROWIDs, that
// match the SQL condition where ("" for all).
func scanDBRows(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, kind, where string, args ...any) ([]DBRow, []int64, error) {
	sel := `SELECT ROWID, name, created_at, size, content_type, etag, '', '', 0, 0, deleted, storage_policy_index FROM object`
	if kind == KindAccount {
		sel = `SELECT ROWID, name, '', 0, '', '', put_timestamp, delete_timestamp, object_count, bytes_used, deleted, storage_policy_index FROM container`
	}
	if where != "" {
		sel += " WHERE " + where
	}
	rs, err := q.QueryContext(ctx, sel, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s rows: %w", kind, err)
	}
	defer rs.Close()
	var out []DBRow
	var ids []int64
	for rs.Next() {
		var r DBRow
		var id, deleted int64
		if err := rs.Scan(&id, &r.Name, &r.Created, &r.Size, &r.ContentType, &r.ETag, &r.Put, &r.Delete,
			&r.Objects, &r.Bytes, &deleted, &r.Policy); err != nil {
			return nil, nil, fmt.Errorf("read %s rows: %w", kind, err)
		}
		r.Deleted = deleted != 0
		out = append(out, r)
		ids = append(ids, id)
	}
	if err := rs.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s rows: %w", kind, err)
	}
	return out, ids, nil
}

// bucketsWhere is the SQL condition for rows in the named buckets ("00"
// to "ff"); names that are not buckets match nothing.
func bucketsWhere(buckets []string) (string, []any) {
	var ph []string
	var args []any
	for _, b := range buckets {
		n, err := strconv.ParseUint(b, 16, 8)
		if err != nil || len(b) != 2 {
			continue
		}
		ph = append(ph, "?")
		args = append(args, int(n))
	}
	if len(ph) == 0 {
		return "0", nil
	}
	return "bucket IN (" + strings.Join(ph, ", ") + ")", args
}
