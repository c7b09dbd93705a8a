package imagestore

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeS3 is just enough of S3 for the S3 store: object PUT/GET (with
// Range)/DELETE and multipart create/upload-part/complete/abort. It checks
// every request's SigV4 signature with its own implementation of the
// algorithm, written from the AWS documentation independently of s3.go.
type fakeS3 struct {
	bucket, region, accessKey, secretKey string
	// failPart makes UploadPart of that part number fail with a 500.
	failPart int
	// ignoreRange makes GET answer the whole object, as some gateways do.
	ignoreRange bool

	mu        sync.Mutex
	objects   map[string][]byte      // key → data; guarded by mu
	uploads   map[string]*fakeUpload // upload id → upload; guarded by mu
	nextID    int                    // guarded by mu
	aborted   int                    // guarded by mu
	puts      int                    // single-request PUTs; guarded by mu
	completed [][]int                // part sizes of each completed upload; guarded by mu
	authFails []string               // why signatures were refused; guarded by mu
}

type fakeUpload struct {
	key   string
	parts map[int][]byte
}

func newFakeS3(t *testing.T) (*fakeS3, *httptest.Server) {
	t.Helper()
	f := &fakeS3{
		bucket: "images", region: "eu-test-1", accessKey: "AKTEST", secretKey: "s3cr3t/key+",
		objects: map[string][]byte{}, uploads: map[string]*fakeUpload{},
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, why := range f.authFails {
			t.Errorf("fake s3 refused a signature: %s", why)
		}
	})
	return f, srv
}

func (f *fakeS3) writeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>fake %s</Message></Error>", code, code)
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.writeError(w, http.StatusBadRequest, "IncompleteBody")
		return
	}
	if why := f.verifySignature(r, body); why != "" {
		f.mu.Lock()
		f.authFails = append(f.authFails, why)
		f.mu.Unlock()
		f.writeError(w, http.StatusForbidden, "SignatureDoesNotMatch")
		return
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket != f.bucket {
		f.writeError(w, http.StatusNotFound, "NoSuchBucket")
		return
	}
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		f.nextID++
		id := fmt.Sprintf("upload-%d", f.nextID)
		f.uploads[id] = &fakeUpload{key: key, parts: map[int][]byte{}}
		fmt.Fprintf(w, "<InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>", bucket, key, id)

	case r.Method == http.MethodPut && q.Has("uploadId"):
		up := f.uploads[q.Get("uploadId")]
		n, err := strconv.Atoi(q.Get("partNumber"))
		if up == nil || up.key != key || err != nil || n < 1 || n > 10000 {
			f.writeError(w, http.StatusNotFound, "NoSuchUpload")
			return
		}
		if n == f.failPart {
			f.writeError(w, http.StatusInternalServerError, "InternalError")
			return
		}
		up.parts[n] = body
		w.Header().Set("ETag", fakeETag(body))

	case r.Method == http.MethodPost && q.Has("uploadId"):
		up := f.uploads[q.Get("uploadId")]
		if up == nil || up.key != key {
			f.writeError(w, http.StatusNotFound, "NoSuchUpload")
			return
		}
		var req struct {
			Parts []struct {
				PartNumber int
				ETag       string
			} `xml:"Part"`
		}
		if err := xml.Unmarshal(body, &req); err != nil || len(req.Parts) == 0 {
			f.writeError(w, http.StatusBadRequest, "MalformedXML")
			return
		}
		var data []byte
		var sizes []int
		for i, p := range req.Parts {
			part, ok := up.parts[p.PartNumber]
			if !ok || p.PartNumber != i+1 || p.ETag != fakeETag(part) {
				f.writeError(w, http.StatusBadRequest, "InvalidPart")
				return
			}
			if i < len(req.Parts)-1 && len(part) < 5<<20 {
				f.writeError(w, http.StatusBadRequest, "EntityTooSmall")
				return
			}
			data = append(data, part...)
			sizes = append(sizes, len(part))
		}
		f.objects[key] = data
		f.completed = append(f.completed, sizes)
		delete(f.uploads, q.Get("uploadId"))
		fmt.Fprintf(w, "<CompleteMultipartUploadResult><Key>%s</Key></CompleteMultipartUploadResult>", key)

	case r.Method == http.MethodDelete && q.Has("uploadId"):
		if _, ok := f.uploads[q.Get("uploadId")]; !ok {
			f.writeError(w, http.StatusNotFound, "NoSuchUpload")
			return
		}
		delete(f.uploads, q.Get("uploadId"))
		f.aborted++
		w.WriteHeader(http.StatusNoContent)

	case r.Method == http.MethodPut && len(q) == 0:
		f.objects[key] = body
		f.puts++
		w.Header().Set("ETag", fakeETag(body))

	case r.Method == http.MethodGet && len(q) == 0:
		data, ok := f.objects[key]
		if !ok {
			f.writeError(w, http.StatusNotFound, "NoSuchKey")
			return
		}
		rg := r.Header.Get("Range")
		if rg == "" || f.ignoreRange {
			w.Write(data)
			return
		}
		first, last, ok := parseFakeRange(rg, int64(len(data)))
		if !ok {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(data)))
			f.writeError(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange")
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[first : last+1])

	case r.Method == http.MethodDelete && len(q) == 0:
		if _, ok := f.objects[key]; !ok {
			// AWS answers 204 here; some S3-compatible services 404.
			f.writeError(w, http.StatusNotFound, "NoSuchKey")
			return
		}
		delete(f.objects, key)
		w.WriteHeader(http.StatusNoContent)

	default:
		f.writeError(w, http.StatusNotImplemented, "NotImplemented")
	}
}

func fakeETag(b []byte) string {
	h := sha256.Sum256(b)
	return `"` + hex.EncodeToString(h[:16]) + `"`
}

// parseFakeRange parses "bytes=first-[last]" against size.
func parseFakeRange(v string, size int64) (first, last int64, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	a, b, found2 := strings.Cut(spec, "-")
	if !found || !found2 {
		return 0, 0, false
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first >= size {
		return 0, 0, false
	}
	last = size - 1
	if b != "" {
		l, err := strconv.ParseInt(b, 10, 64)
		if err != nil || l < first {
			return 0, 0, false
		}
		last = min(l, size-1)
	}
	return first, last, true
}

// verifySignature checks r's SigV4 Authorization header, returning why it
// is wrong or "".
func (f *fakeS3) verifySignature(r *http.Request, body []byte) string {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")
	if !ok {
		return "no AWS4-HMAC-SHA256 authorization"
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(auth, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		fields[k] = v
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 5 || cred[0] != f.accessKey || cred[2] != f.region || cred[3] != "s3" || cred[4] != "aws4_request" {
		return "bad credential " + fields["Credential"]
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if !strings.HasPrefix(amzDate, cred[1]) || len(amzDate) != 16 {
		return "x-amz-date " + amzDate + " does not match scope day " + cred[1]
	}
	sum := sha256.Sum256(body)
	if got := r.Header.Get("X-Amz-Content-Sha256"); got != hex.EncodeToString(sum[:]) {
		return "x-amz-content-sha256 does not match the body"
	}
	signedNames := strings.Split(fields["SignedHeaders"], ";")
	for _, must := range []string{"host", "x-amz-date", "x-amz-content-sha256"} {
		found := false
		for _, n := range signedNames {
			found = found || n == must
		}
		if !found {
			return must + " is not signed"
		}
	}
	if !sort.StringsAreSorted(signedNames) {
		return "signed headers are not sorted"
	}
	var headers strings.Builder
	for _, n := range signedNames {
		v := r.Header.Get(n)
		if n == "host" {
			v = r.Host
		}
		headers.WriteString(n + ":" + strings.TrimSpace(v) + "\n")
	}

	// Canonical URI: the decoded path encoded afresh, so a client that
	// sends a non-canonical encoding fails here.
	var uri strings.Builder
	for i, seg := range strings.Split(r.URL.Path, "/") {
		if i > 0 {
			uri.WriteByte('/')
		}
		uri.WriteString(sigv4Encode(seg))
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "bad query: " + err.Error()
	}
	var pairs []string
	for k, vs := range query {
		for _, v := range vs {
			pairs = append(pairs, sigv4Encode(k)+"="+sigv4Encode(v))
		}
	}
	sort.Strings(pairs)

	canonical := r.Method + "\n" + uri.String() + "\n" + strings.Join(pairs, "&") + "\n" +
		headers.String() + "\n" + fields["SignedHeaders"] + "\n" + r.Header.Get("X-Amz-Content-Sha256")
	crHash := sha256.Sum256([]byte(canonical))
	scope := strings.Join(cred[1:], "/")
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(crHash[:])

	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		io.WriteString(h, s)
		return h.Sum(nil)
	}
	k := mac([]byte("AWS4"+f.secretKey), cred[1])
	k = mac(k, f.region)
	k = mac(k, "s3")
	k = mac(k, "aws4_request")
	want := hex.EncodeToString(mac(k, toSign))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return fmt.Sprintf("%s %s: signature mismatch; canonical request was:\n%s", r.Method, r.URL, canonical)
	}
	return ""
}

// sigv4Encode is the URI encoding of the SigV4 documentation: unreserved
// characters stay, every other byte becomes %XX in upper case.
func sigv4Encode(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func newTestS3(t *testing.T, f *fakeS3, srv *httptest.Server) *S3 {
	t.Helper()
	s, err := NewS3(S3Config{
		ID: "s3", Endpoint: srv.URL, Region: f.region, Bucket: f.bucket,
		AccessKey: f.accessKey, SecretKey: f.secretKey,
		Prefix: "glance/", PartSize: 5 << 20, HTTPClient: srv.Client(),
	})
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s
}

// pattern returns n bytes that differ at every offset of interest, so that
// a misplaced range or part shows.
func patternBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>13)
	}
	return b
}

func TestS3PutGetSmall(t *testing.T) {
	f, srv := newFakeS3(t)
	s := newTestS3(t, f, srv)
	ctx := context.Background()

	for _, size := range []int{0, 1, 1000, 5<<20 - 1} {
		data := patternBytes(size)
		id := fmt.Sprintf("small %d+ü", size) // exercises key escaping
		loc, n, err := s.Put(ctx, id, bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Put %d bytes: %v", size, err)
		}
		if n != int64(size) {
			t.Fatalf("Put wrote %d, want %d", n, size)
		}
		if loc.Store != "s3" || !strings.HasPrefix(loc.URL, "s3://images/glance/") {
			t.Fatalf("location = %+v", loc)
		}
		rc, err := s.Get(ctx, loc, 0, -1)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if got := readAllAndClose(t, rc); !bytes.Equal(got, data) {
			t.Fatalf("Get returned %d bytes, want %d", len(got), size)
		}
		if f.objects["glance/"+id] == nil && size > 0 {
			t.Fatalf("object stored under an unexpected key: %v", fakeKeys(f))
		}
	}
	if f.puts != 4 || len(f.completed) != 0 {
		t.Fatalf("puts = %d, multipart uploads = %d; want 4 single PUTs", f.puts, len(f.completed))
	}
}

func fakeKeys(f *fakeS3) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.objects {
		out = append(out, k)
	}
	return out
}

func TestS3PutMultipart(t *testing.T) {
	f, srv := newFakeS3(t)
	s := newTestS3(t, f, srv)
	ctx := context.Background()

	tests := []struct {
		size  int
		parts []int
	}{
		{12 << 20, []int{5 << 20, 5 << 20, 2 << 20}},
		{10 << 20, []int{5 << 20, 5 << 20}}, // no empty trailing part
		{5 << 20, []int{5 << 20}},
	}
	for i, tt := range tests {
		data := patternBytes(tt.size)
		// iotest.OneByteReader would be slow; a reader returning odd-sized
		// chunks checks that parts are filled across short reads.
		loc, n, err := s.Put(ctx, fmt.Sprintf("multi-%d", i), &chunkyReader{r: bytes.NewReader(data), max: 100_003})
		if err != nil {
			t.Fatalf("Put %d bytes: %v", tt.size, err)
		}
		if n != int64(tt.size) {
			t.Fatalf("Put wrote %d, want %d", n, tt.size)
		}
		f.mu.Lock()
		got := f.completed[len(f.completed)-1]
		f.mu.Unlock()
		if fmt.Sprint(got) != fmt.Sprint(tt.parts) {
			t.Fatalf("parts = %v, want %v", got, tt.parts)
		}
		rc, err := s.Get(ctx, loc, 0, -1)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !bytes.Equal(readAllAndClose(t, rc), data) {
			t.Fatalf("Get returned different data")
		}
	}
	if len(f.uploads) != 0 || f.aborted != 0 {
		t.Fatalf("uploads left = %d, aborted = %d", len(f.uploads), f.aborted)
	}
}

type chunkyReader struct {
	r   io.Reader
	max int
}

func (c *chunkyReader) Read(p []byte) (int, error) {
	if len(p) > c.max {
		p = p[:c.max]
	}
	return c.r.Read(p)
}

func TestS3GetRange(t *testing.T) {
	f, srv := newFakeS3(t)
	s := newTestS3(t, f, srv)
	ctx := context.Background()
	data := patternBytes(12 << 20)
	loc, _, err := s.Put(ctx, "ranged", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	for _, tt := range []struct{ offset, length int64 }{
		{0, 1}, {5<<20 - 10, 20}, {12<<20 - 3, -1}, {12<<20 - 3, 100}, {7, 0}, {0, -1}, {1 << 20, 1 << 20},
	} {
		rc, err := s.Get(ctx, loc, tt.offset, tt.length)
		if err != nil {
			t.Fatalf("Get(%d, %d): %v", tt.offset, tt.length, err)
		}
		want := data[tt.offset:]
		if tt.length >= 0 && int64(len(want)) > tt.length {
			want = want[:tt.length]
		}
		if got := readAllAndClose(t, rc); !bytes.Equal(got, want) {
			t.Errorf("Get(%d, %d) returned %d bytes, want %d", tt.offset, tt.length, len(got), len(want))
		}
	}
	if _, err := s.Get(ctx, loc, 13<<20, -1); err == nil {
		t.Fatalf("Get past the end succeeded")
	}

	f.mu.Lock()
	f.ignoreRange = true
	f.mu.Unlock()
	rc, err := s.Get(ctx, loc, 100, 50)
	if err != nil {
		t.Fatalf("Get with Range ignored: %v", err)
	}
	if got := readAllAndClose(t, rc); !bytes.Equal(got, data[100:150]) {
		t.Fatalf("Get with Range ignored returned %d wrong bytes", len(got))
	}
	f.mu.Lock()
	f.ignoreRange = false
	f.mu.Unlock()

	// A zero-length read of an empty object is fine too.
	empty, _, err := s.Put(ctx, "empty", bytes.NewReader(nil))
	if err != nil {
		t.Fatalf("Put empty: %v", err)
	}
	rc, err = s.Get(ctx, empty, 0, 0)
	if err != nil {
		t.Fatalf("Get empty: %v", err)
	}
	if got := readAllAndClose(t, rc); len(got) != 0 {
		t.Fatalf("Get empty returned %d bytes", len(got))
	}
}

type s3FailingReader struct {
	r     io.Reader
	after int64
	read  int64
	err   error
	hook  func() // runs when the failure point is reached
}

func (fr *s3FailingReader) Read(p []byte) (int, error) {
	if fr.read >= fr.after {
		if fr.hook != nil {
			fr.hook()
			fr.hook = nil
		}
		if fr.err != nil {
			return 0, fr.err
		}
	}
	if rest := fr.after - fr.read; rest > 0 && int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := fr.r.Read(p)
	fr.read += int64(n)
	return n, err
}

func assertNothingLeft(t *testing.T, f *fakeS3, key string, wantAborted int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.objects[key]; ok {
		t.Errorf("object %s exists after a failed put", key)
	}
	if len(f.uploads) != 0 {
		t.Errorf("%d multipart uploads left behind", len(f.uploads))
	}
	if f.aborted != wantAborted {
		t.Errorf("aborted = %d, want %d", f.aborted, wantAborted)
	}
}

func TestS3PutReaderFails(t *testing.T) {
	f, srv := newFakeS3(t)
	s := newTestS3(t, f, srv)
	boom := errors.New("boom")
	r := &s3FailingReader{r: bytes.NewReader(patternBytes(12 << 20)), after: 7 << 20, err: boom}
	_, _, err := s.Put(context.Background(), "broken", r)
	if !errors.Is(err, boom) {
		t.Fatalf("Put = %v, want boom", err)
	}
	assertNothingLeft(t, f, "glance/broken", 1)

	// Failing before the first part is full leaves nothing to abort.
	r = &s3FailingReader{r: bytes.NewReader(patternBytes(1 << 20)), after: 1000, err: boom}
	if _, _, err := s.Put(context.Background(), "broken-small", r); !errors.Is(err, boom) {
		t.Fatalf("small Put = %v, want boom", err)
	}
	assertNothingLeft(t, f, "glance/broken-small", 1)
}

func TestS3PutContextCancelled(t *testing.T) {
	f, srv := newFakeS3(t)
	s := newTestS3(t, f, srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &s3FailingReader{r: bytes.NewReader(patternBytes(12 << 20)), after: 6 << 20, hook: cancel}
	_, _, err := s.Put(ctx, "cancelled", r)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want context.Canceled", err)
	}
	assertNothingLeft(t, f, "glance/cancelled", 1)
}

func TestS3PutPartFails(t *testing.T) {
	f, srv := newFakeS3(t)
	f.failPart = 2
	s := newTestS3(t, f, srv)
	_, _, err := s.Put(context.Background(), "part-fails", bytes.NewReader(patternBytes(12<<20)))
	var s3err *S3Error
	if !errors.As(err, &s3err) || s3err.Status != http.StatusInternalServerError {
		t.Fatalf("Put = %v, want a 500 S3Error", err)
	}
	assertNothingLeft(t, f, "glance/part-fails", 1)
}

func TestS3DeleteAndNotFound(t *testing.T) {
	f, srv := newFakeS3(t)
	s := newTestS3(t, f, srv)
	ctx := context.Background()
	loc, _, err := s.Put(ctx, "doomed", strings.NewReader("data"))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := s.Delete(ctx, loc); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, loc, 0, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, loc, 0, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("zero-length Get after delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, loc); err != nil {
		t.Fatalf("second Delete = %v, want nil", err)
	}

	// Locations of another bucket are refused, not served from ours.
	other := Location{Store: "s3", URL: "s3://other/glance/doomed"}
	if _, err := s.Get(ctx, other, 0, -1); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of another bucket = %v", err)
	}
	if err := s.Delete(ctx, other); err == nil {
		t.Fatalf("Delete of another bucket succeeded")
	}
}

func TestS3BadCredentials(t *testing.T) {
	f, srv := newFakeS3(t)
	s, err := NewS3(S3Config{
		ID: "s3", Endpoint: srv.URL, Region: f.region, Bucket: f.bucket,
		AccessKey: f.accessKey, SecretKey: "wrong", HTTPClient: srv.Client(),
	})
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	_, _, err = s.Put(context.Background(), "x", strings.NewReader("data"))
	var s3err *S3Error
	if !errors.As(err, &s3err) || s3err.Code != "SignatureDoesNotMatch" {
		t.Fatalf("Put = %v, want SignatureDoesNotMatch", err)
	}
	f.mu.Lock()
	f.authFails = nil // expected
	f.mu.Unlock()
}

func TestNewS3Validates(t *testing.T) {
	good := S3Config{ID: "s3", Endpoint: "http://127.0.0.1:9000", Bucket: "b", AccessKey: "a", SecretKey: "s"}
	if _, err := NewS3(good); err != nil {
		t.Fatalf("NewS3(good) = %v", err)
	}
	for name, mut := range map[string]func(*S3Config){
		"no id":          func(c *S3Config) { c.ID = "" },
		"no bucket":      func(c *S3Config) { c.Bucket = "" },
		"no secret":      func(c *S3Config) { c.SecretKey = "" },
		"bad scheme":     func(c *S3Config) { c.Endpoint = "ftp://x" },
		"no host":        func(c *S3Config) { c.Endpoint = "http://" },
		"tiny parts":     func(c *S3Config) { c.PartSize = 1 << 20 },
		"endpoint query": func(c *S3Config) { c.Endpoint = "http://x/?a=b" },
	} {
		c := good
		mut(&c)
		if _, err := NewS3(c); err == nil {
			t.Errorf("NewS3 with %s succeeded", name)
		}
	}
}

func TestS3ErrorSentinels(t *testing.T) {
	if !errors.Is(&S3Error{Status: 404, Code: "NoSuchKey"}, ErrNotFound) {
		t.Error("NoSuchKey is not ErrNotFound")
	}
	if errors.Is(&S3Error{Status: 404, Code: "NoSuchBucket"}, ErrNotFound) {
		t.Error("NoSuchBucket is ErrNotFound")
	}
	if !errors.Is(fmt.Errorf("x: %w", &S3Error{Status: 507, Code: "XMinioStorageFull"}), ErrFull) {
		t.Error("XMinioStorageFull is not ErrFull")
	}
}

// TestFakeS3VerifierKnownAnswer checks the fake's verifier itself against
// the "GET Object" example of the AWS SigV4 documentation, so that the
// signer and the verifier cannot share a misreading of the algorithm.
func TestFakeS3VerifierKnownAnswer(t *testing.T) {
	f := &fakeS3{region: "us-east-1", accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
	r := httptest.NewRequest(http.MethodGet, "http://examplebucket.s3.amazonaws.com/test.txt", nil)
	r.Header.Set("Range", "bytes=0-9")
	r.Header.Set("X-Amz-Content-Sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	r.Header.Set("X-Amz-Date", "20130524T000000Z")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"+
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"+
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
	if why := f.verifySignature(r, nil); why != "" {
		t.Fatalf("AWS example refused: %s", why)
	}
	r.Header.Set("Range", "bytes=0-10")
	if why := f.verifySignature(r, nil); why == "" {
		t.Fatalf("tampered AWS example accepted")
	}
}

// TestS3SignerFixedClock signs with a fixed clock (the date of the AWS
// examples) a key full of characters that SigV4 escapes differently from
// net/url, and has the fake verify it.
func TestS3SignerFixedClock(t *testing.T) {
	f, srv := newFakeS3(t)
	s := newTestS3(t, f, srv)
	s.now = func() time.Time { return time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC) }
	if _, _, err := s.Put(context.Background(), "a b/c~d=e&f", strings.NewReader("x")); err != nil {
		t.Fatalf("Put with fixed clock: %v", err)
	}
}
