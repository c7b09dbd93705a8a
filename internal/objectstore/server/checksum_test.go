package server

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// dataFile is the path of the one .data file of an object.
func dataFile(t *testing.T, n *node, part, obj string) string {
	t.Helper()
	data, err := filepath.Glob(filepath.Join(n.objDir(part, "a", "c", obj), "*.data"))
	if err != nil || len(data) != 1 {
		t.Fatalf("data files of %s: %v, %v", obj, data, err)
	}
	return data[0]
}

// rewriteMetadata changes the stored metadata of the file at path.
func rewriteMetadata(t *testing.T, path string, edit func(md map[string]string)) {
	t.Helper()
	md, err := readMetadata(path)
	if err != nil {
		t.Fatal(err)
	}
	edit(md)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 0; ; i++ {
		key := metadataKey
		if i > 0 {
			key += strconv.Itoa(i)
		}
		if err := unix.Fremovexattr(int(f.Fd()), key); errors.Is(err, unix.ENODATA) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if err := writeMetadata(f, md); err != nil {
		t.Fatal(err)
	}
}

// corruptLastBytes changes a byte near the end of the file, keeping its size.
func corruptLastBytes(t *testing.T, path string, size int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("X"), int64(size-10)); err != nil {
		t.Fatal(err)
	}
}

// An object keeps the CRC-32C of its data in its metadata, as its own:
// a client neither sees it nor replaces it with a POST.
func TestObjectKeepsDataChecksum(t *testing.T) {
	n := newNode(t)
	body := "some object data"
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), body, nil), 201, "put")
	md, err := readMetadata(dataFile(t, n, "0", "o"))
	if err != nil {
		t.Fatal(err)
	}
	if want := formatChecksum(crc32.Checksum([]byte(body), castagnoli)); md[dataChecksumKey] != want {
		t.Fatalf("kept checksum %q, want %q", md[dataChecksumKey], want)
	}
	expectStatus(t, do(t, "POST", n.objURL+"/sda/0/a/c/o",
		map[string]string{"X-Timestamp": n.ts(), "X-Object-Meta-Color": "blue", dataChecksumKey: "00000000"}, ""), 202, "post")
	_, obj, err := openObjectDir(n.objDir("0", "a", "c", "o"))
	if err != nil || obj == nil {
		t.Fatalf("open after the POST: %v", err)
	}
	obj.Close()
	if obj.md[dataChecksumKey] != md[dataChecksumKey] {
		t.Fatalf("checksum after the POST %q, want the data's %q", obj.md[dataChecksumKey], md[dataChecksumKey])
	}
	for _, method := range []string{"HEAD", "GET"} {
		r := do(t, method, n.objURL+"/sda/0/a/c/o", nil, "")
		expectStatus(t, r, 200, method+" after the POST")
		if v := r.header.Get(dataChecksumKey); v != "" {
			t.Fatalf("%s answered %s: %s", method, dataChecksumKey, v)
		}
		if r.header.Get("X-Object-Meta-Color") != "blue" {
			t.Fatalf("%s lost the POST's metadata: %v", method, r.header)
		}
	}
	if ents := listDir(t, filepath.Join(n.dev, "quarantined")); len(ents) != 0 {
		t.Fatalf("a good object was quarantined: %v", ents)
	}
}

// Data stored without a kept checksum (by a server before it kept one)
// is still checked on a full read, against its ETag, whether it is read
// at once or streamed.
func TestGetChecksDataWithoutKeptChecksum(t *testing.T) {
	for name, body := range map[string]string{
		"small": "precious small data",
		"large": strings.Repeat("0123456789abcdef", 40<<10), // 640 KiB: streamed
	} {
		t.Run(name, func(t *testing.T) {
			n := newNode(t)
			expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), body, nil), 201, "put")
			path := dataFile(t, n, "0", "o")
			rewriteMetadata(t, path, func(md map[string]string) { delete(md, dataChecksumKey) })
			if r := do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, ""); r.status != 200 || r.body != body {
				t.Fatalf("GET of the intact object: %d, %d bytes", r.status, len(r.body))
			}
			corruptLastBytes(t, path, len(body))
			do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, "") // a streamed one is sent before the check
			expectStatus(t, do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, ""), 404, "GET after the failed check")
			if ents := listDir(t, filepath.Join(n.dev, "quarantined", "objects")); len(ents) != 1 {
				t.Fatalf("quarantine %v", ents)
			}
		})
	}
}

// The auditor checks the ETag and the kept checksum: a checksum that
// disagrees with good data would fail every read, so it is quarantined.
func TestAuditorChecksKeptChecksum(t *testing.T) {
	n := newNode(t)
	expectStatus(t, n.putObject(t, "/sda/0/a/c/wrongsum", n.ts(), "good data", nil), 201, "put")
	expectStatus(t, n.putObject(t, "/sda/0/a/c/nosum", n.ts(), "good data too", nil), 201, "put")
	rewriteMetadata(t, dataFile(t, n, "0", "wrongsum"), func(md map[string]string) { md[dataChecksumKey] = "00000000" })
	rewriteMetadata(t, dataFile(t, n, "0", "nosum"), func(md map[string]string) { delete(md, dataChecksumKey) })
	st, err := n.obj.AuditOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 2 || st.Quarantined != 1 {
		t.Fatalf("audit stats %+v", st)
	}
	expectStatus(t, do(t, "GET", n.objURL+"/sda/0/a/c/wrongsum", nil, ""), 404, "object with a wrong checksum")
	expectStatus(t, do(t, "GET", n.objURL+"/sda/0/a/c/nosum", nil, ""), 200, "intact object without a checksum")
}

// A copy received by replication keeps the checksum of the bytes it
// received, whatever the sender's metadata said about it.
func TestSyncedCopyKeepsItsOwnChecksum(t *testing.T) {
	n := newNode(t)
	body, ts := "replicated data", n.ts()
	sum := md5.Sum([]byte(body))
	md, _ := json.Marshal(map[string]string{
		"name": "/a/c/o", "X-Timestamp": ts, "Content-Type": "text/plain", "Content-Length": strconv.Itoa(len(body)),
		"ETag": hex.EncodeToString(sum[:]), dataChecksumKey: "00000000",
	})
	hash := hashPath("pre", "suf", "a", "c", "o")
	expectStatus(t, do(t, MethodSync, n.objURL+"/sda/0/"+hash+"/"+ts+".data",
		map[string]string{SyncMetadataHeader: base64.StdEncoding.EncodeToString(md)}, body), 201, "SYNC")
	got, err := readMetadata(dataFile(t, n, "0", "o"))
	if err != nil {
		t.Fatal(err)
	}
	if want := formatChecksum(crc32.Checksum([]byte(body), castagnoli)); got[dataChecksumKey] != want {
		t.Fatalf("kept checksum %q, want %q", got[dataChecksumKey], want)
	}
	if r := do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, ""); r.status != 200 || r.body != body {
		t.Fatalf("GET of the synced copy: %d %q", r.status, r.body)
	}
}
