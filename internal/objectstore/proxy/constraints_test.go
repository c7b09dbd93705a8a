package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMetadataLimits(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "m", ownerToken, nil, ""), http.StatusCreated, "container put")
	many := map[string]string{}
	for i := range 91 {
		many[fmt.Sprintf("X-Object-Meta-K%d", i)] = "v"
	}
	big := map[string]string{}
	for i := range 17 {
		big[fmt.Sprintf("X-Object-Meta-K%d", i)] = strings.Repeat("v", 250)
	}
	cases := []struct {
		what   string
		method string
		path   string
		hdr    map[string]string
		status int
		body   string
	}{
		{"name too long", "PUT", "m/o", map[string]string{"X-Object-Meta-" + strings.Repeat("n", 129): "v"}, 400,
			"Metadata name too long: X-Object-Meta-" + strings.Repeat("N", 1) + strings.Repeat("n", 128)},
		{"value too long", "PUT", "m/o", map[string]string{"X-Object-Meta-Color": strings.Repeat("v", 257)}, 400,
			"Metadata value longer than 256: X-Object-Meta-Color"},
		{"too many", "PUT", "m/o", many, 400, "Too many metadata items; max 90"},
		{"too large", "PUT", "m/o", big, 400, "Total metadata too large; max 4096"},
		{"container value", "POST", "m", map[string]string{"X-Container-Meta-A": strings.Repeat("v", 257)}, 400,
			"Metadata value longer than 256: X-Container-Meta-A"},
		{"account value", "POST", "/v1/" + account, map[string]string{"X-Account-Meta-A": strings.Repeat("v", 257)}, 400,
			"Metadata value longer than 256: X-Account-Meta-A"},
		{"header too long", "PUT", "m/o", map[string]string{"X-Something": strings.Repeat("v", 8193)}, 400,
			"Header value too long: X-Something"},
		{"object name", "PUT", "m/" + strings.Repeat("o", 1025), nil, 400, "Object name length of 1025 longer than 1024"},
		{"container name", "PUT", strings.Repeat("c", 257), nil, 400, "Container name length of 257 longer than 256"},
		{"delete-at past", "PUT", "m/o", map[string]string{"X-Delete-At": "1000"}, 400, "X-Delete-At in past"},
		{"delete-at bad", "PUT", "m/o", map[string]string{"X-Delete-At": "soon"}, 400, "Non-integer X-Delete-At"},
		{"delete-after bad", "PUT", "m/o", map[string]string{"X-Delete-After": "x"}, 400, "Non-integer X-Delete-After"},
		{"if-none-match", "PUT", "m/o", map[string]string{"If-None-Match": "abc"}, 400, "If-None-Match only supports *"},
	}
	for _, tc := range cases {
		r := c.do(t, tc.method, tc.path, ownerToken, tc.hdr, "x")
		if r.status != tc.status || r.body != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.what, r.status, r.body, tc.status, tc.body)
		}
	}
	// At the limits everything is accepted.
	ok := map[string]string{"X-Object-Meta-" + strings.Repeat("n", 128): strings.Repeat("v", 256)}
	expect(t, c.do(t, "PUT", "m/o", ownerToken, ok, "x"), http.StatusCreated, "metadata at the limits")
}

func TestObjectFeatures(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "f", ownerToken, nil, ""), http.StatusCreated, "container put")
	r := c.do(t, "PUT", "f/o", ownerToken, map[string]string{"Etag": "00000000000000000000000000000000"}, "abc")
	expect(t, r, http.StatusUnprocessableEntity, "etag mismatch")
	if r.body != "<html><h1>Unprocessable Entity</h1><p>Unable to process the contained instructions</p></html>" {
		t.Fatalf("422 body %q", r.body)
	}
	expect(t, c.do(t, "PUT", "f/o", ownerToken, map[string]string{"Etag": "900150983cd24fb0d6963f7d28e17f72"}, "abc"), http.StatusCreated, "etag match")

	// Range and conditional requests.
	expect(t, c.do(t, "PUT", "f/digits", ownerToken, nil, "0123456789"), http.StatusCreated, "put")
	r = c.do(t, "GET", "f/digits", ownerToken, map[string]string{"Range": "bytes=2-4"}, "")
	if r.status != http.StatusPartialContent || r.body != "234" || r.header.Get("Content-Range") != "bytes 2-4/10" {
		t.Fatalf("range: %d %q %v", r.status, r.body, r.header)
	}
	expect(t, c.do(t, "GET", "f/digits", ownerToken, map[string]string{"Range": "bytes=20-30"}, ""), http.StatusRequestedRangeNotSatisfiable, "bad range")
	etag := c.do(t, "HEAD", "f/digits", ownerToken, nil, "").header.Get("Etag")
	expect(t, c.do(t, "GET", "f/digits", ownerToken, map[string]string{"If-None-Match": etag}, ""), http.StatusNotModified, "if-none-match")
	expect(t, c.do(t, "GET", "f/digits", ownerToken, map[string]string{"If-Match": `"nope"`}, ""), http.StatusPreconditionFailed, "if-match")
	expect(t, c.do(t, "GET", "f/digits", ownerToken, map[string]string{"If-Match": etag}, ""), http.StatusOK, "if-match ok")
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	expect(t, c.do(t, "GET", "f/digits", ownerToken, map[string]string{"If-Modified-Since": future}, ""), http.StatusNotModified, "if-modified-since")
	expect(t, c.do(t, "PUT", "f/digits", ownerToken, map[string]string{"If-None-Match": "*"}, "again"), http.StatusPreconditionFailed, "put if-none-match *")

	// Chunked upload.
	r = c.do(t, "PUT", "f/chunked", ownerToken, map[string]string{"Transfer-Encoding": "chunked"}, strings.Repeat("z", 200000))
	expect(t, r, http.StatusCreated, "chunked put")
	if r := c.do(t, "GET", "f/chunked", ownerToken, nil, ""); len(r.body) != 200000 {
		t.Fatalf("chunked object is %d bytes", len(r.body))
	}

	// Content-Type from the name when absent.
	req, _ := http.NewRequest("PUT", c.url+"/v1/"+account+"/f/page.html", strings.NewReader("<p>"))
	req.Header.Set("X-Auth-Token", ownerToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	expect(t, resp{status: res.StatusCode}, http.StatusCreated, "put without content type")
	if ct := c.do(t, "HEAD", "f/page.html", ownerToken, nil, "").header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("detected content type %q", ct)
	}

	// X-Delete-After becomes X-Delete-At.
	before := time.Now().Unix()
	expect(t, c.do(t, "PUT", "f/expiring", ownerToken, map[string]string{"X-Delete-After": "3600"}, "tmp"), http.StatusCreated, "put expiring")
	at, err := strconv.ParseInt(c.do(t, "HEAD", "f/expiring", ownerToken, nil, "").header.Get("X-Delete-At"), 10, 64)
	if err != nil || at < before+3600 || at > time.Now().Unix()+3600 {
		t.Fatalf("X-Delete-At %d (%v)", at, err)
	}
	// The object server queued it for the expirer where the proxy said.
	slot := []http.Header{{}}
	c.proxy.expirerUpdates(slot, strconv.FormatInt(at, 10), [3]string{account, "f", "expiring"})
	queue := slot[0].Get("X-Delete-At-Container")
	pl := place(c.proxy.rings.container, expiringObjectsAccount, queue, "")
	res, err = c.proxy.read(context.Background(), pl, http.MethodGet, "/"+expiringObjectsAccount+"/"+queue, "", http.Header{})
	if err != nil {
		t.Fatalf("expirer queue %s: %v", queue, err)
	}
	listing, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := fmt.Sprintf("%d-%s/f/expiring\n", at, account); string(listing) != want {
		t.Fatalf("expirer queue lists %q, want %q", listing, want)
	}
	expect(t, c.do(t, "POST", "f/expiring", ownerToken, map[string]string{"X-Delete-At": strconv.FormatInt(at+10, 10)}, ""), http.StatusAccepted, "post delete-at")
}

func TestCopy(t *testing.T) {
	c := newCluster(t, nil)
	expect(t, c.do(t, "PUT", "src", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "dst", ownerToken, nil, ""), http.StatusCreated, "container put")
	expect(t, c.do(t, "PUT", "src/o", ownerToken, map[string]string{"X-Object-Meta-A": "1", "Content-Type": "text/x-a"}, "copy me"), http.StatusCreated, "put")
	r := c.do(t, "PUT", "dst/o1", ownerToken, map[string]string{"X-Copy-From": "src/o", "X-Object-Meta-B": "2"}, "")
	expect(t, r, http.StatusCreated, "x-copy-from")
	if r.header.Get("X-Copied-From") != "src/o" || r.header.Get("X-Copied-From-Account") != account {
		t.Fatalf("copy headers %v", r.header)
	}
	r = c.do(t, "GET", "dst/o1", ownerToken, nil, "")
	if r.body != "copy me" || r.header.Get("X-Object-Meta-A") != "1" || r.header.Get("X-Object-Meta-B") != "2" || r.header.Get("Content-Type") != "text/x-a" {
		t.Fatalf("copied object %q %v", r.body, r.header)
	}
	expect(t, c.do(t, "COPY", "src/o", ownerToken, map[string]string{"Destination": "/dst/o2", "X-Fresh-Metadata": "true"}, ""), http.StatusCreated, "COPY")
	r = c.do(t, "GET", "dst/o2", ownerToken, nil, "")
	if r.body != "copy me" || r.header.Get("X-Object-Meta-A") != "" {
		t.Fatalf("COPY result %q %v", r.body, r.header)
	}
	expect(t, c.do(t, "COPY", "src/o", ownerToken, map[string]string{"Destination": "nonsense"}, ""), http.StatusPreconditionFailed, "bad destination")
	expect(t, c.do(t, "PUT", "dst/o3", ownerToken, map[string]string{"X-Copy-From": "src/missing"}, ""), http.StatusNotFound, "missing source")
}

func TestMaxFileSize(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.Constraints.MaxFileSize = 10 })
	expect(t, c.do(t, "PUT", "s", ownerToken, nil, ""), http.StatusCreated, "container put")
	for _, hdr := range []map[string]string{nil, {"Transfer-Encoding": "chunked"}} {
		r := c.do(t, "PUT", "s/big", ownerToken, hdr, strings.Repeat("b", 20))
		if r.status != http.StatusRequestEntityTooLarge || r.body != "Your request is too large." {
			t.Errorf("oversized put %v: %d %q", hdr, r.status, r.body)
		}
	}
	expect(t, c.do(t, "HEAD", "s/big", ownerToken, nil, ""), http.StatusNotFound, "nothing stored")
	if r := c.do(t, "GET", "/info", "", nil, ""); !strings.Contains(r.body, `"max_file_size":10`) {
		t.Fatalf("info %s", r.body)
	}
}
