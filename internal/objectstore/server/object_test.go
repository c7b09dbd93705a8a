package server

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestObjectPutGetHeadLayout(t *testing.T) {
	n := newNode(t)
	ts := n.ts()
	r := n.putObject(t, "/sda/7/a/c/dir/o", ts, "hello world", map[string]string{
		"X-Object-Meta-Color": "blue", "Content-Disposition": "inline", "Content-Type": "text/x-test",
	})
	expectStatus(t, r, 201, "put")
	if r.header.Get("Etag") != md5hex("hello world") {
		t.Fatalf("etag %q", r.header.Get("Etag"))
	}
	g := do(t, "GET", n.objURL+"/sda/7/a/c/dir/o", nil, "")
	expectStatus(t, g, 200, "get")
	if g.body != "hello world" || g.header.Get("X-Object-Meta-Color") != "blue" ||
		g.header.Get("Content-Type") != "text/x-test" || g.header.Get("Content-Disposition") != "inline" ||
		g.header.Get("X-Timestamp") != ts || g.header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("get: %q %v", g.body, g.header)
	}
	h := do(t, "HEAD", n.objURL+"/sda/7/a/c/dir/o", nil, "")
	expectStatus(t, h, 200, "head")
	if h.header.Get("Content-Length") != "11" || h.body != "" {
		t.Fatalf("head: %v %q", h.header, h.body)
	}
	// Swift's layout: objects/<part>/<last 3 of hash>/<hash>/<ts>.data,
	// metadata in user.swift.metadata.
	hash := hashPath("pre", "suf", "a", "c", "dir/o")
	dir := filepath.Join(n.dev, "objects", "7", hash[29:], hash)
	files := listDir(t, dir)
	if len(files) != 1 || files[0] != ts+".data" {
		t.Fatalf("files %v", files)
	}
	md, err := readMetadata(filepath.Join(dir, files[0]))
	if err != nil {
		t.Fatal(err)
	}
	if md["name"] != "/a/c/dir/o" || md["ETag"] != md5hex("hello world") || md["Content-Length"] != "11" || md["X-Timestamp"] != ts {
		t.Fatalf("metadata %v", md)
	}
	if tmp := listDir(t, filepath.Join(n.dev, "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp not empty: %v", tmp)
	}
}

func TestObjectPutValidation(t *testing.T) {
	n := newNode(t)
	expectStatus(t, do(t, "PUT", n.objURL+"/sda/0/a/c/o", map[string]string{"Content-Type": "x"}, "x"), 400, "no timestamp")
	expectStatus(t, do(t, "PUT", n.objURL+"/sda/0/a/c/o", map[string]string{"Content-Type": "x", "X-Timestamp": "abc"}, "x"), 400, "bad timestamp")
	expectStatus(t, do(t, "PUT", n.objURL+"/sda/0/a/c/o", map[string]string{"X-Timestamp": n.ts()}, "x"), 400, "no content type")
	past := strconv.FormatInt(time.Now().Unix()-10, 10)
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), "x", map[string]string{"X-Delete-At": past}), 400, "delete-at in past")
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), "x", map[string]string{"X-Object-Meta-" + strings.Repeat("k", 129): "v"}), 400, "meta name too long")
	expectStatus(t, n.putObject(t, "/nodev/0/a/c/o", n.ts(), "x", nil), 507, "missing device")
	n.obj.cfg.MaxFileSize = 4
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), "12345", nil), 413, "too large")
}

func TestObjectETagMismatch(t *testing.T) {
	n := newNode(t)
	r := n.putObject(t, "/sda/0/a/c/o", n.ts(), "data", map[string]string{"ETag": md5hex("other")})
	expectStatus(t, r, 422, "etag mismatch")
	if files := listDir(t, n.objDir("0", "a", "c", "o")); len(files) != 0 {
		t.Fatalf("object kept after 422: %v", files)
	}
	if tmp := listDir(t, filepath.Join(n.dev, "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp not empty: %v", tmp)
	}
	expectStatus(t, do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, ""), 404, "get after 422")
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), "data", map[string]string{"ETag": `"` + md5hex("data") + `"`}), 201, "matching quoted etag")
}

// TestObjectPutInterrupted cuts the connection half way through a body: the
// object must not appear and the tmp file must be gone.
func TestObjectPutInterrupted(t *testing.T) {
	n := newNode(t)
	// A previous good version must survive untouched.
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), "old", nil), 201, "put old")
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.objURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /sda/0/a/c/o HTTP/1.1\r\nHost: x\r\nX-Timestamp: %s\r\nContent-Type: a/b\r\nContent-Length: 1048576\r\n\r\n", n.ts())
	conn.Write(make([]byte, 200*1024))
	conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tmp := listDir(t, filepath.Join(n.dev, "tmp"))
		files := listDir(t, n.objDir("0", "a", "c", "o"))
		if len(tmp) == 0 && len(files) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after interrupted put: tmp %v, object files %v", tmp, files)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g := do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, "")
	expectStatus(t, g, 200, "get")
	if g.body != "old" {
		t.Fatalf("body %q", g.body)
	}
	// A crash leaves a tmp file behind; the updater's sweep reclaims it.
	// (Object writes use unnamed O_TMPFILEs, so tmp may not exist yet.)
	stale := filepath.Join(n.dev, "tmp", "obj-crashed")
	if err := os.MkdirAll(filepath.Dir(stale), 0o750); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(stale, []byte("partial"), 0o600)
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(stale, old, old)
	if st := n.obj.UpdateOnce(t.Context()); st.TmpRemoved != 1 {
		t.Fatalf("tmp removed %d", st.TmpRemoved)
	}
}

func TestObjectChunkedPut(t *testing.T) {
	n := newNode(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.objURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /sda/0/a/c/chunked HTTP/1.1\r\nHost: x\r\nX-Timestamp: %s\r\nContent-Type: a/b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", n.ts())
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 201 || res.Header.Get("Etag") != md5hex("hello world") {
		t.Fatalf("chunked put: %d %v", res.StatusCode, res.Header)
	}
}

func TestObjectLastWriteWins(t *testing.T) {
	n := newNode(t)
	t1, t2, t3, t4 := n.ts(), n.ts(), n.ts(), n.ts()
	p := "/sda/0/a/c/o"
	dir := n.objDir("0", "a", "c", "o")
	expectStatus(t, n.putObject(t, p, t2, "two", nil), 201, "put t2")
	r := n.putObject(t, p, t1, "one", nil)
	expectStatus(t, r, 409, "older put")
	if r.header.Get("X-Backend-Timestamp") != t2 {
		t.Fatalf("409 timestamp %q, want %q", r.header.Get("X-Backend-Timestamp"), t2)
	}
	expectStatus(t, n.putObject(t, p, t2, "again", nil), 409, "same-timestamp put")
	if g := do(t, "GET", n.objURL+p, nil, ""); g.body != "two" {
		t.Fatalf("body %q", g.body)
	}
	r = do(t, "DELETE", n.objURL+p, map[string]string{"X-Timestamp": t1}, "")
	expectStatus(t, r, 409, "older delete")
	if r.header.Get("X-Backend-Timestamp") != t2 {
		t.Fatalf("409 timestamp %q", r.header.Get("X-Backend-Timestamp"))
	}
	// Tombstone.
	expectStatus(t, do(t, "DELETE", n.objURL+p, map[string]string{"X-Timestamp": t3}, ""), 204, "delete")
	if files := listDir(t, dir); len(files) != 1 || files[0] != t3+".ts" {
		t.Fatalf("after delete: %v", files)
	}
	g := do(t, "GET", n.objURL+p, nil, "")
	expectStatus(t, g, 404, "get deleted")
	if g.header.Get("X-Backend-Timestamp") != t3 {
		t.Fatalf("404 timestamp %q", g.header.Get("X-Backend-Timestamp"))
	}
	expectStatus(t, n.putObject(t, p, t2, "late", nil), 409, "put older than tombstone")
	expectStatus(t, do(t, "DELETE", n.objURL+p, map[string]string{"X-Timestamp": t3}, ""), 404, "repeat delete")
	expectStatus(t, n.putObject(t, p, t4, "four", nil), 201, "put after tombstone")
	if files := listDir(t, dir); len(files) != 1 || files[0] != t4+".data" {
		t.Fatalf("after re-put: %v", files)
	}
	if g := do(t, "GET", n.objURL+p, nil, ""); g.body != "four" {
		t.Fatalf("body %q", g.body)
	}
	expectStatus(t, do(t, "DELETE", n.objURL+"/sda/0/a/c/never", map[string]string{"X-Timestamp": n.ts()}, ""), 404, "delete missing")
	if files := listDir(t, n.objDir("0", "a", "c", "never")); len(files) != 1 || !strings.HasSuffix(files[0], ".ts") {
		t.Fatalf("delete of a missing object leaves a tombstone: %v", files)
	}
}

func TestObjectFastPost(t *testing.T) {
	n := newNode(t)
	p := "/sda/0/a/c/o"
	t1, t2, t3, t4 := n.ts(), n.ts(), n.ts(), n.ts()
	expectStatus(t, n.putObject(t, p, t1, "body", map[string]string{"X-Object-Meta-A": "1", "Content-Type": "image/png"}), 201, "put")
	expectStatus(t, do(t, "POST", n.objURL+p, map[string]string{"X-Timestamp": t3, "X-Object-Meta-B": "2"}, ""), 202, "post")
	r := do(t, "POST", n.objURL+p, map[string]string{"X-Timestamp": t2, "X-Object-Meta-C": "3"}, "")
	expectStatus(t, r, 409, "older post")
	g := do(t, "GET", n.objURL+p, nil, "")
	if g.header.Get("X-Object-Meta-A") != "" || g.header.Get("X-Object-Meta-B") != "2" || g.header.Get("X-Object-Meta-C") != "" ||
		g.header.Get("Content-Type") != "image/png" || g.body != "body" || g.header.Get("X-Timestamp") != t3 ||
		g.header.Get("Etag") != md5hex("body") {
		t.Fatalf("merged: %v %q", g.header, g.body)
	}
	dir := n.objDir("0", "a", "c", "o")
	if files := listDir(t, dir); len(files) != 2 || files[0] != t1+".data" || files[1] != t3+".meta" {
		t.Fatalf("files %v", files)
	}
	expectStatus(t, do(t, "POST", n.objURL+"/sda/0/a/c/missing", map[string]string{"X-Timestamp": t3}, ""), 404, "post missing")
	// A newer PUT makes the .meta obsolete.
	expectStatus(t, n.putObject(t, p, t4, "new", nil), 201, "put")
	if files := listDir(t, dir); len(files) != 1 || files[0] != t4+".data" {
		t.Fatalf("files after put %v", files)
	}
}

func TestObjectRanges(t *testing.T) {
	n := newNode(t)
	body := "0123456789abcdefghij"
	p := n.objURL + "/sda/0/a/c/o"
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), body, nil), 201, "put")
	for _, tc := range []struct {
		rng, want, cr string
	}{
		{"bytes=0-4", "01234", "bytes 0-4/20"},
		{"bytes=15-", "fghij", "bytes 15-19/20"},
		{"bytes=-3", "hij", "bytes 17-19/20"},
		{"bytes=10-100", "abcdefghij", "bytes 10-19/20"},
	} {
		g := do(t, "GET", p, map[string]string{"Range": tc.rng}, "")
		expectStatus(t, g, 206, tc.rng)
		if g.body != tc.want || g.header.Get("Content-Range") != tc.cr {
			t.Fatalf("%s: %q %q", tc.rng, g.body, g.header.Get("Content-Range"))
		}
	}
	g := do(t, "GET", p, map[string]string{"Range": "bytes=0-1,5-6,-2"}, "")
	expectStatus(t, g, 206, "multi-range")
	mt, params, err := mime.ParseMediaType(g.header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("content type %q", g.header.Get("Content-Type"))
	}
	if g.header.Get("Content-Length") != strconv.Itoa(len(g.body)) {
		t.Fatalf("multipart content-length %s vs %d", g.header.Get("Content-Length"), len(g.body))
	}
	mr := multipart.NewReader(strings.NewReader(g.body), params["boundary"])
	var got []string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(part)
		got = append(got, part.Header.Get("Content-Range")+"="+string(b))
	}
	want := []string{"bytes 0-1/20=01", "bytes 5-6/20=56", "bytes 18-19/20=ij"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("parts %v", got)
	}
	r := do(t, "GET", p, map[string]string{"Range": "bytes=50-60"}, "")
	expectStatus(t, r, 416, "unsatisfiable")
	if cr := r.header.Values("Content-Range"); len(cr) != 1 || cr[0] != "bytes */20" {
		t.Fatalf("416 content-range %q", r.header.Get("Content-Range"))
	}
	expectStatus(t, do(t, "GET", p, map[string]string{"Range": "bytes=9-3"}, ""), 200, "malformed range ignored")
	expectStatus(t, do(t, "GET", p, map[string]string{"Range": "lines=1-2"}, ""), 200, "other unit ignored")
}

func TestObjectConditionals(t *testing.T) {
	n := newNode(t)
	p := n.objURL + "/sda/0/a/c/o"
	r := n.putObject(t, "/sda/0/a/c/o", n.ts(), "x", nil)
	etag := r.header.Get("Etag")
	g := do(t, "HEAD", p, nil, "")
	lm := g.header.Get("Last-Modified")
	lmt, _ := http.ParseTime(lm)
	before := lmt.Add(-time.Hour).Format(http.TimeFormat)
	for _, tc := range []struct {
		h    map[string]string
		want int
	}{
		{map[string]string{"If-Match": etag}, 200},
		{map[string]string{"If-Match": `"` + etag + `"`}, 200},
		{map[string]string{"If-Match": "*"}, 200},
		{map[string]string{"If-Match": "nope"}, 412},
		{map[string]string{"If-None-Match": etag}, 304},
		{map[string]string{"If-None-Match": "nope, " + etag}, 304},
		{map[string]string{"If-None-Match": "nope"}, 200},
		{map[string]string{"If-Modified-Since": lm}, 304},
		{map[string]string{"If-Modified-Since": before}, 200},
		{map[string]string{"If-Unmodified-Since": lm}, 200},
		{map[string]string{"If-Unmodified-Since": before}, 412},
		// Swift's swob checks If-Unmodified-Since even when If-Match
		// matched (RFC 7232 would not), and clients see Swift's answer.
		{map[string]string{"If-Match": etag, "If-Unmodified-Since": before}, 412},
		{map[string]string{"If-None-Match": "nope", "If-Modified-Since": lm}, 200},
	} {
		r := do(t, "GET", p, tc.h, "")
		if r.status != tc.want {
			t.Errorf("%v: %d, want %d", tc.h, r.status, tc.want)
		}
		if r.status == 304 && (r.body != "" || r.header.Get("Etag") != etag) {
			t.Errorf("304 must carry the etag and no body: %v %q", r.header, r.body)
		}
	}
	expectStatus(t, n.putObject(t, "/sda/0/a/c/o", n.ts(), "y", map[string]string{"If-None-Match": "*"}), 412, "if-none-match * on existing")
	expectStatus(t, n.putObject(t, "/sda/0/a/c/new", n.ts(), "y", map[string]string{"If-None-Match": "*"}), 201, "if-none-match * on new")
}

func TestObjectExpired(t *testing.T) {
	n := newNode(t)
	p := "/sda/0/a/c/o"
	at := time.Now().Unix() + 2
	expectStatus(t, n.putObject(t, p, n.ts(), "x", map[string]string{"X-Delete-At": strconv.FormatInt(at, 10)}), 201, "put")
	g := do(t, "GET", n.objURL+p, nil, "")
	expectStatus(t, g, 200, "before expiry")
	if g.header.Get("X-Delete-At") != strconv.FormatInt(at, 10) {
		t.Fatalf("x-delete-at %q", g.header.Get("X-Delete-At"))
	}
	time.Sleep(time.Until(time.Unix(at, 0)) + 50*time.Millisecond)
	expectStatus(t, do(t, "GET", n.objURL+p, nil, ""), 404, "get expired")
	expectStatus(t, do(t, "HEAD", n.objURL+p, nil, ""), 404, "head expired")
	expectStatus(t, do(t, "GET", n.objURL+p, map[string]string{"X-Backend-Replication": "True"}, ""), 200, "replication read of expired")
	expectStatus(t, do(t, "POST", n.objURL+p, map[string]string{"X-Timestamp": n.ts()}, ""), 404, "post expired")
	// The expirer's DELETE names the X-Delete-At it expects.
	expectStatus(t, do(t, "DELETE", n.objURL+p, map[string]string{"X-Timestamp": n.ts(), "X-If-Delete-At": "1"}, ""), 412, "x-if-delete-at mismatch")
	expectStatus(t, do(t, "DELETE", n.objURL+p, map[string]string{"X-Timestamp": n.ts(), "X-If-Delete-At": strconv.FormatInt(at, 10)}, ""), 404, "expirer delete")
	expectStatus(t, n.putObject(t, p, n.ts(), "x", map[string]string{"If-None-Match": "*"}), 201, "put over expired")
}

func TestMountCheck(t *testing.T) {
	n := newNode(t)
	cfg := n.cfg
	cfg.MountCheck = true
	s, err := NewObjectServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := devicePath(&s.cfg, "sda"); err == nil {
		t.Fatal("a plain directory passed the mount check")
	}
}

// TestDeleteAtQueue checks that an object with X-Delete-At is queued for the
// expirer in the hidden .expiring_objects account.
func TestDeleteAtQueue(t *testing.T) {
	n := newNode(t)
	at := strconv.FormatInt(time.Now().Unix()+3600, 10)
	h := map[string]string{"X-Delete-At": at, "X-Delete-At-Container": at[:6] + "0000",
		"X-Delete-At-Host": n.contHost, "X-Delete-At-Partition": "5", "X-Delete-At-Device": "sda"}
	expectStatus(t, n.putObject(t, "/sda/0/AUTH_a/c/o", n.ts(), "x", h), 201, "put")
	got := listing(t, n.contURL+"/sda/5/.expiring_objects/"+at[:6]+"0000", nil)
	if len(got) != 1 || got[0] != at+"-AUTH_a/c/o" {
		t.Fatalf("expirer queue %v", got)
	}
}
