package server

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"
)

func sampleRows() []objectRow {
	return []objectRow{
		{name: "a", ts: Timestamp{Ticks: 179582360100200}, size: 1, ctype: "text/plain", etag: md5hex("a")},
		{name: "dir/ü/€", ts: Timestamp{Ticks: 179582360100300, Offset: 7}, size: 1 << 40, ctype: "application/octet-stream;swift_bytes=9"},
		{name: "gone", ts: Timestamp{Ticks: 179582360100400}, deleted: true},
	}
}

// A torn tail (a crash mid-append, or blocks that never reached the disk
// and read back as zeros) ends the records before it; the rows before it
// come back whole and in order.
func TestRowRecordsStopAtATornTail(t *testing.T) {
	rows := sampleRows()
	var b []byte
	var ends []int
	for _, r := range rows {
		b = appendRowRecord(b, r)
		ends = append(ends, len(b))
	}
	got, n := decodeRowRecords(b)
	if !reflect.DeepEqual(got, rows) || n != len(b) {
		t.Fatalf("decoded %v (%d bytes), want %v (%d)", got, n, rows, len(b))
	}
	for cut := range len(b) {
		whole := 0 // records entirely before the cut
		for whole < len(ends) && ends[whole] <= cut {
			whole++
		}
		for _, tail := range [][]byte{nil, make([]byte, 64)} {
			got, n := decodeRowRecords(append(bytes.Clone(b[:cut]), tail...))
			// A zero tail can complete a record cut in its last byte (the
			// deleted flag, 0): that record is then whole again.
			if len(got) < whole || len(got) > whole+1 || len(got) > 0 && !reflect.DeepEqual(got, rows[:len(got)]) {
				t.Fatalf("cut at %d (+%d zero bytes): rows %v, want the first %d", cut, len(tail), got, whole)
			}
			if want := 0; len(got) > 0 && n != ends[len(got)-1] || len(got) == 0 && n != want {
				t.Fatalf("cut at %d: %d bytes read for %d rows", cut, n, len(got))
			}
		}
	}
	flipped := bytes.Clone(b)
	flipped[ends[0]+10] ^= 1 // inside the second record's payload
	if got, _ := decodeRowRecords(flipped); !reflect.DeepEqual(got, rows[:1]) {
		t.Fatalf("a corrupt second record: rows %v, want only the first", got)
	}
}

// FuzzDecodeRowRecords: any bytes decode without a panic, and what
// decodes is exactly the encoding of the rows returned.
func FuzzDecodeRowRecords(f *testing.F) {
	var b []byte
	for _, r := range sampleRows() {
		b = appendRowRecord(b, r)
	}
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Add([]byte{})
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, n := decodeRowRecords(b)
		if n < 0 || n > len(b) {
			t.Fatalf("read %d of %d bytes", n, len(b))
		}
		var again []byte
		for _, r := range rows {
			again = appendRowRecord(again, r)
		}
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("rows %v encode to %x, read from %x", rows, again, b[:n])
		}
	})
}

// rawRows reads the listing rows of a database as the file holds them,
// without merging its pending file.
func rawRows(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", sqliteDSN(path, "WAL", "FULL")+existingOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := ReadDBRows(context.Background(), db, KindContainer, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name)
	}
	return names
}

func containerDB(t *testing.T, n *node) string {
	t.Helper()
	dbs, err := ListDBs(n.dev, KindContainer)
	if err != nil || len(dbs) != 1 {
		t.Fatalf("container databases: %v, %v", dbs, err)
	}
	return dbs[0].Path
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// Rows reach the pending file first; a reader sees them; closing the
// server merges them for good and empties the file.
func TestPendingRowsMergedOnReadAndClose(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	path := containerDB(t, n)
	n.putRow(t, "a", "c", "o1", "1")
	n.putRow(t, "a", "c", "o2", "1")
	if fileSize(t, path+pendingSuffix) == 0 {
		t.Fatal("acknowledged rows are not in the pending file")
	}
	if got := listing(t, n.contURL+"/sda/1/a/c", nil); !reflect.DeepEqual(got, []string{"o1", "o2"}) {
		t.Fatalf("listing %v", got)
	}
	if got := rawRows(t, path); !reflect.DeepEqual(got, []string{"o1", "o2"}) {
		t.Fatalf("rows in the database after a read: %v", got)
	}
	n.putRow(t, "a", "c", "o3", "1")
	if err := n.cont.Close(); err != nil {
		t.Fatal(err)
	}
	if got := rawRows(t, path); !reflect.DeepEqual(got, []string{"o1", "o2", "o3"}) {
		t.Fatalf("rows in the database after close: %v", got)
	}
	if sz := fileSize(t, path+pendingSuffix); sz != 0 {
		t.Fatalf("pending file holds %d bytes after close", sz)
	}
}

// Past pendingCompactBytes the server merges the file and empties it
// while writes go on.
func TestPendingFileIsCompacted(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	path := containerDB(t, n)
	long := string(bytes.Repeat([]byte("n"), 1000))
	rows := pendingCompactBytes/1000 + 2
	for i := range rows {
		n.putRow(t, "a", "c", fmt.Sprintf("%s%03d", long, i), "1")
	}
	deadline := time.Now().Add(10 * time.Second)
	for fileSize(t, path+pendingSuffix) >= pendingCompactBytes {
		if time.Now().After(deadline) {
			t.Fatalf("pending file still %d bytes", fileSize(t, path+pendingSuffix))
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, err := os.ReadFile(path + pendingSuffix)
	if err != nil {
		t.Fatal(err)
	}
	inFile, _ := decodeRowRecords(b)
	merged := rawRows(t, path)
	if len(merged) == 0 || len(merged)+len(inFile) < rows {
		t.Fatalf("%d rows in the database and %d in the pending file, of %d", len(merged), len(inFile), rows)
	}
	if got := listing(t, n.contURL+"/sda/1/a/c", nil); len(got) != rows {
		t.Fatalf("listing has %d of %d rows", len(got), rows)
	}
}

// The replicator removes a handoff database only when no row arrived
// after it opened (and merged) it: a row appended since keeps it.
func TestRemoveDBKeepsRowsArrivedAfterOpen(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	path := containerDB(t, n)
	n.putRow(t, "a", "c", "before", "1")
	db, err := OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if sz := fileSize(t, path+pendingSuffix); sz != 0 {
		t.Fatalf("OpenDB left %d bytes in the pending file", sz)
	}
	n.putRow(t, "a", "c", "after", "1")
	if err := RemoveDB(path); !errors.Is(err, errPendingRows) {
		t.Fatalf("RemoveDB with a row pending: %v", err)
	}
	if got := listing(t, n.contURL+"/sda/1/a/c", nil); !reflect.DeepEqual(got, []string{"after", "before"}) {
		t.Fatalf("listing %v", got)
	}
	db, err = OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := RemoveDB(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + pendingSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pending file after RemoveDB: %v", err)
	}
	// The server's handle notices: the next row fails rather than land in
	// a file nobody reads.
	r := do(t, "PUT", n.contURL+"/sda/1/a/c/late", map[string]string{
		"X-Timestamp": n.ts(), "X-Size": "1", "X-Content-Type": "text/plain", "X-Etag": md5hex("late")}, "")
	if r.status/100 == 2 {
		t.Fatalf("row for a removed database: %d", r.status)
	}
}
