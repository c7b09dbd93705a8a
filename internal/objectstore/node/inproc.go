package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// localServers are the handlers of a node's servers by the address the
// rings give them (host:port), for requests that never need to leave the
// process.
//
// With `nimbus up`, and on any host that runs a proxy beside its storage
// node, a small object request crosses loopback HTTP from the proxy to
// the object server, and every write once more from the object server to
// the container server. Each hop costs system calls on both sides and an
// HTTP request and response written and parsed: about a third of a 4 KiB
// GET's CPU. A transport from Transport hands such requests to the
// handler directly; the request and response are the ones HTTP would
// have carried, and everything else goes over the network as before.
type localServers struct {
	mu       sync.RWMutex
	handlers map[string]http.Handler // nil once the node closes
}

func (s *localServers) lookup(host string) http.Handler {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.handlers[host]
}

// close makes later requests take the network, where the node's closed
// listeners refuse them as they would refuse another host's.
func (s *localServers) close() {
	s.mu.Lock()
	s.handlers = nil
	s.mu.Unlock()
}

// localTransport serves requests for the node's own addresses in the
// process and sends the rest through next.
type localTransport struct {
	servers *localServers
	next    http.RoundTripper
	// headerTimeout bounds the wait for a handler's response header, as
	// next's ResponseHeaderTimeout bounds a remote one; zero waits for
	// the request's context only.
	headerTimeout time.Duration
}

// Transport returns a transport that serves requests for this node's
// servers in the process and sends the rest through next (an
// *http.Transport's ResponseHeaderTimeout applies to both).
func (n *Node) Transport(next http.RoundTripper) http.RoundTripper {
	t := &localTransport{servers: n.local, next: next}
	if ht, ok := next.(*http.Transport); ok {
		t.headerTimeout = ht.ResponseHeaderTimeout
	}
	return t
}

// RoundTrip implements http.RoundTripper. As with a remote server, the
// response arrives once the handler is done or has written more than it
// buffers (see localResponse), the rest of its body streams while the
// handler writes it, and the request body is closed when the handler is
// done.
func (t *localTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := t.servers.lookup(req.URL.Host)
	if h == nil {
		return t.next.RoundTrip(req)
	}
	pr, pw := io.Pipe()
	w := &localResponse{req: req, header: http.Header{}, body: pw, pr: pr,
		ready: make(chan *http.Response, 1), failed: make(chan error, 1)}
	sreq := serverRequest(req)
	body := &watchedBody{ReadCloser: sreq.Body, done: make(chan struct{})}
	// A server answers "Expect: 100-continue" when the handler first
	// reads the body; the proxy waits for that before it sends any.
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.Got100Continue != nil &&
		strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		body.firstRead = trace.Got100Continue
	}
	sreq.Body = body
	go w.serve(h, sreq)

	// As with http.Transport, the header timeout starts once the request
	// body is all sent: a streamed upload may take any time.
	bodyDone, headerTimeout := (<-chan struct{})(body.done), (<-chan time.Time)(nil)
	if sreq.ContentLength == 0 {
		bodyDone = nil
		headerTimeout = t.startHeaderTimer()
	}
	for {
		select {
		case resp := <-w.ready:
			return resp, nil
		case err := <-w.failed:
			return nil, err
		case <-bodyDone:
			bodyDone, headerTimeout = nil, t.startHeaderTimer()
		case <-headerTimeout:
			return nil, w.abandon(context.DeadlineExceeded)
		case <-req.Context().Done():
			return nil, w.abandon(req.Context().Err())
		}
	}
}

// startHeaderTimer starts the wait for a response header; nil when
// there is no limit.
func (t *localTransport) startHeaderTimer() <-chan time.Time {
	if t.headerTimeout <= 0 {
		return nil
	}
	return time.After(t.headerTimeout)
}

// watchedBody is a request body that tells when the handler has read it
// to the end or closed it.
type watchedBody struct {
	io.ReadCloser
	firstRead func() // called before the first read, if set
	once      sync.Once
	done      chan struct{}
}

func (b *watchedBody) Read(p []byte) (int, error) {
	if b.firstRead != nil {
		b.firstRead()
		b.firstRead = nil
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(func() { close(b.done) })
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.once.Do(func() { close(b.done) })
	return b.ReadCloser.Close()
}

// serverRequest is req as a server receives it: a path-only URL, the
// Host header in Host, a body that is never nil, and an unknown length
// marked chunked as it would arrive on the wire.
func serverRequest(req *http.Request) *http.Request {
	r := req.Clone(req.Context())
	r.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	r.RequestURI = req.URL.RequestURI()
	if r.Host == "" {
		r.Host = req.URL.Host
	}
	r.RemoteAddr = "local"
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	if r.Body == nil {
		r.Body = http.NoBody
	}
	// A client request's 0 with a body means "unknown" (Request.ContentLength).
	if r.ContentLength == 0 && r.Body != http.NoBody {
		r.ContentLength = -1
	}
	if r.ContentLength < 0 {
		r.TransferEncoding = []string{"chunked"}
	}
	return r
}

// localBodyBuffer is how much of a response body the handler may write
// before the response goes to the caller. A small object's GET, a HEAD and
// a PUT's answer fit, so the caller wakes once, when the handler is done,
// instead of once for the header and again for each write of the body
// (futex wake-ups and goroutine switches were a sixth of a 4 KiB GET's
// CPU). Larger bodies stream through a pipe after the first
// localBodyBuffer bytes.
const localBodyBuffer = 32 << 10

// localResponse is the http.ResponseWriter of an in-process request. Its
// methods run on the handler's goroutine only.
//
// The response goes to the caller when the handler returns, flushes, or
// writes more than localBodyBuffer bytes, whichever comes first: a server
// on the network buffers its output the same way.
type localResponse struct {
	req       *http.Request
	header    http.Header
	body      *io.PipeWriter
	pr        *io.PipeReader
	ready     chan *http.Response // the response, once it is sent
	failed    chan error          // or why there is none
	resp      *http.Response      // the response built by WriteHeader
	buf       []byte              // body written before the response was sent
	delivered bool                // resp went to ready; later writes go to the pipe
	noBody    bool
}

var _ http.Flusher = (*localResponse)(nil)

// serve runs the handler and ends the response as net/http's server
// would: an empty 200 if nothing was written, a cut body if it panicked
// after writing some, an error for the client if before.
func (w *localResponse) serve(h http.Handler, r *http.Request) {
	defer func() {
		r.Body.Close()
		p := recover()
		if p == nil {
			if w.resp == nil {
				if _, ok := w.header["Content-Length"]; !ok {
					w.header.Set("Content-Length", "0")
				}
				w.WriteHeader(http.StatusOK)
			}
			if !w.delivered {
				w.deliver(bytes.NewReader(w.buf))
			}
			w.body.Close()
			return
		}
		err := io.ErrUnexpectedEOF
		if p != http.ErrAbortHandler {
			err = fmt.Errorf("local %s %s: handler panicked: %v", w.req.Method, w.req.URL.Host, p)
		}
		w.body.CloseWithError(err)
		switch {
		case w.delivered:
		case w.resp != nil && len(w.buf) > 0:
			// The bytes written so far, then the error, as a cut
			// connection would give them.
			w.deliver(io.MultiReader(bytes.NewReader(w.buf), w.pr))
		default:
			w.failed <- err
		}
	}()
	h.ServeHTTP(w, r)
}

// deliver sends the response with the given body (unless it has none).
func (w *localResponse) deliver(body io.Reader) {
	w.delivered = true
	if !w.noBody {
		w.resp.Body = struct {
			io.Reader
			io.Closer
		}{body, w.pr}
	}
	w.ready <- w.resp
}

// abandon gives up on the response: the handler's writes fail, and it
// returns.
func (w *localResponse) abandon(cause error) error {
	err := fmt.Errorf("local %s %s: %w", w.req.Method, w.req.URL.Host, cause)
	w.pr.CloseWithError(err)
	return err
}

func (w *localResponse) Header() http.Header { return w.header }

// WriteHeader fixes the response's status and header; it is sent later
// (see localResponse). Informational statuses are dropped: no handler of
// the storage servers sends one, and the client transport would not
// return them either.
func (w *localResponse) WriteHeader(code int) {
	if w.resp != nil || code < 200 {
		return
	}
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	w.resp = &http.Response{
		Status:     strconv.Itoa(code) + " " + http.StatusText(code),
		StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header.Clone(), ContentLength: -1, Body: http.NoBody, Request: w.req,
	}
	if n, err := strconv.ParseInt(w.resp.Header.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		w.resp.ContentLength = n
	}
	if w.noBody {
		w.pr.Close()
		if w.req.Method != http.MethodHead {
			w.resp.ContentLength = 0
		}
	}
}

// Write buffers or streams p to the client; like net/http's server it
// sniffs a missing Content-Type from the first bytes, and drops bytes of a
// response that has no body.
func (w *localResponse) Write(p []byte) (int, error) {
	if w.resp == nil {
		if _, ok := w.header["Content-Type"]; !ok && len(p) > 0 {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if !w.delivered {
		if len(w.buf)+len(p) <= localBodyBuffer {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		w.deliver(io.MultiReader(bytes.NewReader(w.buf), w.pr))
	}
	n, err := w.body.Write(p)
	if errors.Is(err, io.ErrClosedPipe) {
		err = fmt.Errorf("local response: client went away: %w", err)
	}
	return n, err
}

// Flush sends the response, with what the handler wrote so far; the rest
// of the body streams.
func (w *localResponse) Flush() {
	if w.resp == nil {
		w.WriteHeader(http.StatusOK)
	}
	if !w.delivered {
		w.deliver(io.MultiReader(bytes.NewReader(w.buf), w.pr))
	}
}
