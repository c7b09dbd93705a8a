package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

func (h *harness) upload(token, id string, data []byte, want int) {
	h.t.Helper()
	status, _, body := h.do(token, "PUT", "/v2/images/"+id+"/file", bytes.NewReader(data), "Content-Type", "application/octet-stream")
	if status != want {
		h.t.Fatalf("upload %s: status %d, want %d: %s", id, status, want, body)
	}
}

func (h *harness) files() []string {
	h.t.Helper()
	es, err := os.ReadDir(h.dataDir)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestUploadDownload(t *testing.T) {
	h := newHarness(t)
	id := h.create("a", map[string]any{"name": "img", "disk_format": "raw", "container_format": "bare"})["id"].(string)

	// A queued image has no data yet.
	if status, _, body := h.do("a", "GET", "/v2/images/"+id+"/file", nil); status != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("download queued: %d %q", status, body)
	}
	data := make([]byte, 300000)
	rand.Read(data)
	h.upload("a", id, data, http.StatusNoContent)

	im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK)
	md := md5.Sum(data)
	sh := sha512.Sum512(data)
	if im["status"] != "active" || im["size"] != float64(len(data)) || im["checksum"] != hex.EncodeToString(md[:]) ||
		im["os_hash_algo"] != "sha512" || im["os_hash_value"] != hex.EncodeToString(sh[:]) {
		t.Fatalf("after upload %v", im)
	}
	status, hdr, body := h.do("a", "GET", "/v2/images/"+id+"/file", nil)
	if status != http.StatusOK || !bytes.Equal(body, data) || hdr.Get("Content-MD5") != hex.EncodeToString(md[:]) ||
		hdr.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("download: %d %v (%d bytes)", status, hdr, len(body))
	}
	status, hdr, body = h.do("a", "GET", "/v2/images/"+id+"/file", nil, "Range", "bytes=100-199")
	if status != http.StatusPartialContent || !bytes.Equal(body, data[100:200]) || hdr.Get("Content-Range") != "bytes 100-199/300000" {
		t.Fatalf("range: %d %v", status, hdr)
	}
	status, _, body = h.do("a", "GET", "/v2/images/"+id+"/file", nil, "Range", "bytes=-10")
	if status != http.StatusPartialContent || !bytes.Equal(body, data[len(data)-10:]) {
		t.Fatalf("suffix range: %d", status)
	}
	if status, _, _ := h.do("a", "GET", "/v2/images/"+id+"/file", nil, "Range", "bytes=400000-"); status != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("bad range: %d", status)
	}
	if status, _, _ := h.do("", "GET", "/v2/images/"+id+"/file", nil); status != http.StatusUnauthorized {
		t.Fatalf("anonymous download: %d", status)
	}
	if status, _, _ := h.do("b", "GET", "/v2/images/"+id+"/file", nil); status != http.StatusNotFound {
		t.Fatalf("other project download: %d", status)
	}

	// Size filters see uploaded sizes.
	small := h.create("a", map[string]any{"name": "small", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.upload("a", small, []byte("tiny"), http.StatusNoContent)
	for q, want := range map[string]string{"size=4": small, "size_max=10": small, "size_min=1000": id, "size=300000": id} {
		if got := ids(h.json("a", "GET", "/v2/images?"+q, nil, http.StatusOK)); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %v", q, got)
		}
	}

	if got := ids(h.json("a", "GET", "/v2/images?sort=size:asc", nil, http.StatusOK)); len(got) != 2 || got[0] != small {
		t.Errorf("sort=size:asc: %v", got)
	}
	h.json("a", "DELETE", "/v2/images/"+small, nil, http.StatusNoContent)

	// Data needs formats first.
	noFormat := h.create("a", map[string]any{"name": "nf"})["id"].(string)
	h.upload("a", noFormat, []byte("x"), http.StatusBadRequest)

	// Uploads are raw bytes.
	other415 := h.create("a", map[string]any{"name": "ct", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	if status, _, _ := h.do("a", "PUT", "/v2/images/"+other415+"/file", bytes.NewReader([]byte("{}")), "Content-Type", "application/json"); status != http.StatusUnsupportedMediaType {
		t.Fatalf("json upload: %d", status)
	}

	// Re-upload to an active image conflicts.
	h.upload("a", id, []byte("again"), http.StatusConflict)
	// Only the owner uploads.
	other := h.create("a", map[string]any{"name": "o", "visibility": "community"})["id"].(string)
	h.upload("b", other, []byte("x"), http.StatusForbidden)

	// Deleting removes the data.
	if n := len(h.files()); n != 1 {
		t.Fatalf("%d files before delete", n)
	}
	h.json("a", "DELETE", "/v2/images/"+id, nil, http.StatusNoContent)
	if n := len(h.files()); n != 0 {
		t.Fatalf("%d files after delete", n)
	}
}

func TestLargeUploadStreams(t *testing.T) {
	h := newHarness(t)
	id := h.create("a", map[string]any{"name": "big", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	const size = 20 << 20
	// The body comes from a generator, not a buffer, so the request is
	// chunked and far larger than the JSON body limit.
	pr, pw := io.Pipe()
	sum := md5.New()
	go func() {
		chunk := make([]byte, 64<<10)
		for i := 0; i < size/len(chunk); i++ {
			for j := range chunk {
				chunk[j] = byte(i + j)
			}
			sum.Write(chunk)
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("PUT", h.srv.URL+"/v2/images/"+id+"/file", pr)
	req.Header.Set("X-Auth-Token", "a")
	req.Header.Set("Content-Type", "application/octet-stream")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("upload status %d", resp.StatusCode)
	}
	runtime.ReadMemStats(&after)
	// Client and server together allocate far less than the image: the
	// data streams through fixed buffers.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Fatalf("upload of %d bytes allocated %d bytes", size, alloc)
	}
	im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK)
	if im["size"] != float64(size) || im["checksum"] != hex.EncodeToString(sum.Sum(nil)) {
		t.Fatalf("big image %v", im)
	}
	status, hdr, body := h.do("a", "GET", "/v2/images/"+id+"/file", nil)
	if status != http.StatusOK || len(body) != size || hdr.Get("Content-Length") != strconv.Itoa(size) {
		t.Fatalf("download big: %d, %d bytes", status, len(body))
	}
}

// TestTruncatedUpload sends fewer bytes than Content-Length and hangs up:
// the image must go back to queued with no data left in the store.
func TestTruncatedUpload(t *testing.T) {
	h := newHarness(t)
	id := h.create("a", map[string]any{"name": "cut", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	head := "PUT /v2/images/" + id + "/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: a\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
	conn.Write([]byte(head))
	conn.Write(make([]byte, 500000))
	// The upload is under way before the client hangs up; a second
	// upload meanwhile conflicts.
	waitStatus(t, h, id, "saving")
	h.upload("a", id, []byte("x"), http.StatusConflict)
	conn.Close()
	waitStatus(t, h, id, "queued")
	if files := h.files(); len(files) != 0 {
		t.Fatalf("left behind %v", files)
	}
	// The image can still be uploaded afterwards.
	h.upload("a", id, []byte("complete"), http.StatusNoContent)
	if im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK); im["size"] != float64(8) {
		t.Fatalf("after retry %v", im)
	}
}

// TestSizeMismatch: a client whose body is shorter than the length it
// announced fails; nothing is stored.
func TestSizeMismatch(t *testing.T) {
	h := newHarness(t)
	id := h.create("a", map[string]any{"name": "short", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	req, _ := http.NewRequest("PUT", h.srv.URL+"/v2/images/"+id+"/file", io.LimitReader(bytes.NewReader(make([]byte, 100)), 50))
	req.ContentLength = 100
	req.Header.Set("X-Auth-Token", "a")
	resp, err := h.srv.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("short body accepted: %d", resp.StatusCode)
		}
	}
	waitStatus(t, h, id, "queued")
	if files := h.files(); len(files) != 0 {
		t.Fatalf("left behind %v", files)
	}
}

func waitStatus(t *testing.T, h *harness, id, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK)
		if im["status"] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("image %s stays %v, want %s", id, im["status"], want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeactivateReactivate(t *testing.T) {
	h := newHarness(t)
	id := h.create("a", map[string]any{"name": "d", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	h.json("admin", "POST", "/v2/images/"+id+"/actions/deactivate", nil, http.StatusForbidden) // queued
	h.upload("a", id, []byte("payload"), http.StatusNoContent)
	// Another project cannot even see the private image; its owner's
	// members may deactivate it, as Glance's defaults allow.
	h.json("b", "POST", "/v2/images/"+id+"/actions/deactivate", nil, http.StatusNotFound)
	h.json("a", "POST", "/v2/images/"+id+"/actions/deactivate", nil, http.StatusNoContent)
	if im := h.json("a", "GET", "/v2/images/"+id, nil, http.StatusOK); im["status"] != "deactivated" {
		t.Fatalf("status %v", im["status"])
	}
	if status, _, _ := h.do("a", "GET", "/v2/images/"+id+"/file", nil); status != http.StatusForbidden {
		t.Fatalf("download deactivated as owner: %d", status)
	}
	if status, _, body := h.do("admin", "GET", "/v2/images/"+id+"/file", nil); status != http.StatusOK || string(body) != "payload" {
		t.Fatalf("download deactivated as admin: %d", status)
	}
	h.json("admin", "POST", "/v2/images/"+id+"/actions/reactivate", nil, http.StatusNoContent)
	if status, _, body := h.do("a", "GET", "/v2/images/"+id+"/file", nil); status != http.StatusOK || string(body) != "payload" {
		t.Fatalf("download reactivated: %d", status)
	}
}

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		h             string
		start, length int64
		ok            bool
	}{
		{"bytes=0-9", 0, 10, true},
		{"bytes=5-", 5, 95, true},
		{"bytes=-5", 95, 5, true},
		{"bytes=90-200", 90, 10, true},
		{"bytes=100-", 0, 0, false},
		{"bytes=5-1", 0, 0, false},
		{"bytes=0-1,3-4", 0, 0, false},
		{"items=0-1", 0, 0, false},
	} {
		br, ok := parseRange(c.h, 100)
		if ok != c.ok || (ok && (br.start != c.start || br.length != c.length)) {
			t.Errorf("%s: %v %v", c.h, br, ok)
		}
	}
}

// TestDeleteDuringUpload: an image deleted while its data streams in
// answers 410 to the upload and keeps no data.
func TestDeleteDuringUpload(t *testing.T) {
	h := newHarness(t)
	id := h.create("a", map[string]any{"name": "gone", "disk_format": "raw", "container_format": "bare"})["id"].(string)
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "PUT /v2/images/" + id + "/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: a\r\nContent-Type: application/octet-stream\r\nContent-Length: 200000\r\n\r\n"
	conn.Write([]byte(head))
	conn.Write(make([]byte, 100000))
	waitStatus(t, h, id, "saving")
	h.json("a", "DELETE", "/v2/images/"+id, nil, http.StatusNoContent)
	conn.Write(make([]byte, 100000))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone {
		t.Fatalf("upload of a deleted image: %d", resp.StatusCode)
	}
	if files := h.files(); len(files) != 0 {
		t.Fatalf("left behind %v", files)
	}
}

// TestRequeueInterruptedUpload: an image left in saving by a process that
// died goes back to queued when the service starts; a live one does not.
func TestRequeueInterruptedUpload(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	dead := h.create("a", map[string]any{"name": "dead"})["id"].(string)
	live := h.create("a", map[string]any{"name": "live"})["id"].(string)
	old := store.FormatTime(time.Now().Add(-time.Hour))
	now := store.FormatTime(time.Now())
	for id, beat := range map[string]string{dead: old, live: now} {
		if _, err := h.svc.db.Exec(ctx, `UPDATE images SET status = 'saving', upload_heartbeat = ? WHERE id = ?`, beat, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := New(ctx, h.svc.cfg, h.svc.db, h.svc.api, h.svc.log); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, h, dead, "queued")
	waitStatus(t, h, live, "saving")
}
