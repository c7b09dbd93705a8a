package node

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// roundTripFunc is a next transport that records what reached it.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newLocal(h http.Handler, next http.RoundTripper) (*localServers, http.RoundTripper) {
	s := &localServers{handlers: map[string]http.Handler{"10.0.0.1:6200": h}}
	return s, &localTransport{servers: s, next: next}
}

type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

// TestLocalTransportIsHTTP: the handler sees the request a server would
// (path-only URL, Host, length or chunked, body) and the client gets the
// response a client would, and the request body is closed afterwards.
func TestLocalTransportIsHTTP(t *testing.T) {
	type seen struct {
		uri, path, query, host string
		length                 int64
		te                     []string
		body                   string
	}
	got := make(chan seen, 1)
	_, tr := newLocal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.RequestURI, r.URL.Path, r.URL.RawQuery, r.Host, r.ContentLength, r.TransferEncoding, string(b)}
		w.Header().Set("X-Backend-Timestamp", "1")
		w.Header().Set("Content-Length", "5")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "hello")
	}), nil)
	for _, tc := range []struct {
		name   string
		length int64
		te     []string
	}{{"known length", 4, nil}, {"unknown length", -1, []string{"chunked"}}} {
		body := &closeRecorder{Reader: strings.NewReader("data")}
		req, _ := http.NewRequest("PUT", "http://10.0.0.1:6200/sda/1/a/c/o%20x?multipart-manifest=get", body)
		req.ContentLength = tc.length
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s := <-got
		if s.uri != "/sda/1/a/c/o%20x?multipart-manifest=get" || s.path != "/sda/1/a/c/o x" || s.query != "multipart-manifest=get" ||
			s.host != "10.0.0.1:6200" || s.length != tc.length || len(s.te) != len(tc.te) || s.body != "data" {
			t.Errorf("%s: handler saw %+v", tc.name, s)
		}
		if resp.StatusCode != 201 || resp.ContentLength != 5 || string(b) != "hello" || resp.Header.Get("X-Backend-Timestamp") != "1" {
			t.Errorf("%s: response %d len %d %q %v", tc.name, resp.StatusCode, resp.ContentLength, b, resp.Header)
		}
		time.Sleep(10 * time.Millisecond) // the body is closed once the handler returned
		if !body.closed.Load() {
			t.Errorf("%s: request body not closed", tc.name)
		}
	}
}

// TestLocalTransportHeadAndEmpty: a HEAD's body bytes are dropped, and a
// handler that writes nothing answers an empty 200.
func TestLocalTransportHeadAndEmpty(t *testing.T) {
	_, tr := newLocal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", "3")
			w.Write([]byte("abc"))
		}
	}), nil)
	req, _ := http.NewRequest("HEAD", "http://10.0.0.1:6200/x", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); len(b) != 0 || resp.ContentLength != 3 || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %d len %d body %q", resp.StatusCode, resp.ContentLength, b)
	}
	req, _ = http.NewRequest("GET", "http://10.0.0.1:6200/x", nil)
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); len(b) != 0 || resp.ContentLength != 0 || resp.StatusCode != 200 {
		t.Fatalf("empty GET: %d len %d body %q", resp.StatusCode, resp.ContentLength, b)
	}
}

// TestLocalTransportStreamsAndStops: the response arrives while the
// handler still writes, and a client that closes the body stops it.
func TestLocalTransportStreamsAndStops(t *testing.T) {
	stopped := make(chan error, 1)
	_, tr := newLocal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first"))
		for {
			if _, err := w.Write(make([]byte, 1024)); err != nil {
				stopped <- err
				return
			}
		}
	}), nil)
	req, _ := http.NewRequest("GET", "http://10.0.0.1:6200/big", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first" {
		t.Fatalf("first bytes %q, %v", buf, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("sniffed content type %q", ct)
	}
	resp.Body.Close()
	select {
	case err := <-stopped:
		if err == nil {
			t.Fatal("handler write succeeded after the client left")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler still writing after the client closed the body")
	}
}

// TestLocalTransportBuffersSmallBodies: a small body reaches the caller
// in one piece when the handler returns, not write by write; a Flush sends
// what there is at once.
func TestLocalTransportBuffersSmallBodies(t *testing.T) {
	release := make(chan struct{})
	_, tr := newLocal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("abc"))
		if r.URL.Path == "/flush" {
			w.(http.Flusher).Flush()
		}
		<-release
		w.Write([]byte("def"))
	}), nil)
	type result struct {
		resp *http.Response
		err  error
	}
	get := func(path string) chan result {
		got := make(chan result, 1)
		go func() {
			req, _ := http.NewRequest("GET", "http://10.0.0.1:6200"+path, nil)
			resp, err := tr.RoundTrip(req)
			got <- result{resp, err}
		}()
		return got
	}

	got := get("/flush")
	var r result
	select {
	case r = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no response after the handler flushed")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(r.resp.Body, buf); err != nil || string(buf) != "abc" {
		t.Fatalf("flushed bytes %q, %v", buf, err)
	}

	got = get("/whole")
	select {
	case r := <-got:
		t.Fatalf("response before the handler was done: %v", r.err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if rest, err := io.ReadAll(r.resp.Body); err != nil || string(rest) != "def" {
		t.Fatalf("rest of the flushed body %q, %v", rest, err)
	}
	r = <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if b, err := io.ReadAll(r.resp.Body); err != nil || string(b) != "abcdef" {
		t.Fatalf("whole body %q, %v", b, err)
	}
}

// TestLocalTransportFailures: a panic before the header is a transport
// error, an aborted handler after it a cut body, as over a connection.
func TestLocalTransportFailures(t *testing.T) {
	_, tr := newLocal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/early" {
			panic("boom")
		}
		w.Header().Set("Content-Length", "10")
		w.Write([]byte("part"))
		panic(http.ErrAbortHandler)
	}), nil)
	req, _ := http.NewRequest("GET", "http://10.0.0.1:6200/early", nil)
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic before the header: %v", err)
	}
	req, _ = http.NewRequest("GET", "http://10.0.0.1:6200/late", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("aborted body: %v", err)
	}
}

// TestLocalTransportOtherHosts: other addresses, and the node's own once
// it closed, go to the next transport.
func TestLocalTransportOtherHosts(t *testing.T) {
	var forwarded []string
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		forwarded = append(forwarded, r.URL.Host)
		return nil, errors.New("connection refused")
	})
	s, tr := newLocal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), next)
	req, _ := http.NewRequest("GET", "http://10.0.0.2:6200/x", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("other host answered")
	}
	s.close()
	req, _ = http.NewRequest("GET", "http://10.0.0.1:6200/x", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("closed node answered in process")
	}
	if len(forwarded) != 2 || forwarded[0] != "10.0.0.2:6200" || forwarded[1] != "10.0.0.1:6200" {
		t.Fatalf("forwarded %v", forwarded)
	}
}

// TestLocalTransportHeaderTimeout: a handler that never answers is given
// up on like a remote server that never sends its header.
func TestLocalTransportHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s, _ := newLocal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }), nil)
	tr := &localTransport{servers: s, headerTimeout: 20 * time.Millisecond}
	req, _ := http.NewRequest("GET", "http://10.0.0.1:6200/slow", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("hung handler answered")
	}
}

// slowBody yields n bytes, one per read, each after a pause.
type slowBody struct {
	n     int
	pause time.Duration
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, io.EOF
	}
	time.Sleep(b.pause)
	b.n--
	p[0] = 'x'
	return 1, nil
}

// TestLocalTransportSlowUpload: the header timeout counts from the end
// of the request body, so an upload slower than it still succeeds.
func TestLocalTransportSlowUpload(t *testing.T) {
	s, _ := newLocal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusCreated)
	}), nil)
	tr := &localTransport{servers: s, headerTimeout: 20 * time.Millisecond}
	req, _ := http.NewRequest("PUT", "http://10.0.0.1:6200/up", io.NopCloser(&slowBody{n: 10, pause: 5 * time.Millisecond}))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 201 || resp.Header.Get("X-Got") != "10" {
		t.Fatalf("slow upload: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestLocalTransportContinue: a request that expects 100 Continue gets it
// (through its client trace) when the handler starts reading the body,
// not before, and not when the handler refuses without reading.
func TestLocalTransportContinue(t *testing.T) {
	readStarted := make(chan struct{})
	_, tr := newLocal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusInsufficientStorage)
			return
		}
		<-readStarted
		io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
	}), nil)
	for _, path := range []string{"/accept", "/refuse"} {
		var continued atomic.Bool
		ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{Got100Continue: func() { continued.Store(true) }})
		req, _ := http.NewRequestWithContext(ctx, "PUT", "http://10.0.0.1:6200"+path, strings.NewReader("body"))
		req.Header.Set("Expect", "100-continue")
		done := make(chan *http.Response, 1)
		go func() {
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Error(err)
			}
			done <- resp
		}()
		if path == "/accept" {
			time.Sleep(10 * time.Millisecond)
			if continued.Load() {
				t.Fatal("100 Continue before the handler read")
			}
			close(readStarted)
		}
		resp := <-done
		if want := path == "/accept"; continued.Load() != want || resp == nil {
			t.Fatalf("%s: continued %v, response %v", path, continued.Load(), resp)
		}
	}
}
