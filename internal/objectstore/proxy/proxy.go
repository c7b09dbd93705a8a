package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/bufpool"
)

// Proxy is the Swift proxy server: an http.Handler for the Swift v1 API.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	rings   rings
	client  *http.Client
	limiter *errorLimiter
	infos   *infoCache
	clock   clock

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ http.Handler = (*Proxy)(nil)

// New loads the rings and returns a proxy that reloads them in the
// background until Close.
func New(cfg Config) (*Proxy, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rs, err := loadRings(c)
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg: c, log: c.Logger.With("service", "object-proxy"), rings: rs, client: c.Client,
		limiter: newErrorLimiter(c.ErrorSuppressionLimit, c.ErrorSuppressionInterval),
		infos:   newInfoCache(c.InfoCacheTTL),
		stop:    make(chan struct{}), done: make(chan struct{}),
	}
	go p.reloadLoop(p.stop, p.done)
	return p, nil
}

// Close stops the ring reloader. In-flight requests are not interrupted.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		close(p.stop)
		<-p.done
	})
	return nil
}

// request is one client request being served.
type request struct {
	w                          http.ResponseWriter
	r                          *http.Request
	account, container, object string
	transID                    string
	ident                      *api.Identity // nil: anonymous
	// owner is Swift's swift_owner: the caller may see and set the
	// privileged headers (ACLs, sync keys, temp URL keys).
	owner bool
	// signed: a temp URL authorized the request, not a token.
	signed bool
	// signedContainer: the temp URL was signed with this container's key,
	// which vouches for that container only ("" for an account key).
	signedContainer string
	// synced: a container-sync daemon's request, authorized by its
	// signature (or sync key); syncTimestamp is its X-Timestamp, which
	// its writes keep instead of the proxy's.
	synced        bool
	syncTimestamp string
	// link is the walk of the symlinks a GET or HEAD has followed so
	// far (nil before the first).
	link *symlinkWalk
}

// ctx is the request's context.
func (q *request) ctx() context.Context { return q.r.Context() }

// names is the /account[/container[/object]] part of backend paths.
func (q *request) names() string {
	s := "/" + q.account
	if q.container != "" {
		s += "/" + q.container
		if q.object != "" {
			s += "/" + q.object
		}
	}
	return s
}

// ServeHTTP routes /info and /v1/{account}[/{container}[/{object}]]. It
// does not use http.ServeMux: object names may contain "//" and "..",
// which ServeMux would clean away.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hyphenateHeaderNames(r.Header)
	// Domain remapping comes first, as in Swift's pipeline, and its
	// writer wraps every response, errors included.
	w, remapErr := p.domainRemap(w, r)
	q := &request{w: w, r: r, transID: newTransID()}
	w.Header().Set("X-Trans-Id", q.transID)
	w.Header().Set("X-Openstack-Request-Id", q.transID)
	if remapErr != nil {
		writeError(w, r, p.log, remapErr)
		return
	}
	if err := p.serve(q); err != nil {
		writeError(w, r, p.log, err)
	}
}

// hyphenateHeaderNames renames request headers spelled with underscores
// to their hyphenated form, as Swift sees them: under WSGI both spellings
// arrive as the same HTTP_X_... variable, so a client sending
// X-Container-Meta-test_key stores the metadata key test-key, and
// clients (Tempest among them) rely on that.
func hyphenateHeaderNames(h http.Header) {
	for k, vs := range h {
		if !strings.Contains(k, "_") {
			continue
		}
		delete(h, k)
		name := http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
		h[name] = append(h[name], vs...)
	}
}

func (p *Proxy) serve(q *request) error {
	path := q.r.URL.Path
	mw := p.cfg.Middlewares
	switch {
	case path == "/info":
		return p.info(q)
	case path == "/healthcheck" && !mw.DisableHealthcheck:
		return healthcheck(q)
	case path == "/crossdomain.xml" && !mw.DisableCrossDomain:
		return p.crossDomain(q)
	}
	if err := p.parsePath(q, path); err != nil {
		return err
	}
	if err := p.checkHeaderSizes(q.r.Header); err != nil {
		return err
	}
	if q.r.Method == http.MethodOptions {
		return p.options(q)
	}
	if err := p.corsResponse(q); err != nil {
		return err
	}
	// Container sync requests, temp URLs and form posts carry their own
	// signed authorization, so they come before tokens, as in Swift's
	// pipeline.
	synced, err := p.syncAuthorize(q)
	if err != nil {
		return err
	}
	q.synced = synced
	signed := synced
	if !synced {
		if signed, err = p.tempURL(q); err != nil {
			return err
		}
	}
	if !signed && p.isFormPost(q) {
		return p.formPost(q)
	}
	if !signed {
		if err := p.identify(q); err != nil {
			return err
		}
		// Static web sites answer anonymous reads before the ACL check:
		// a redirect to "container/" or an error page needs no read access.
		if handled, err := p.staticWeb(q); handled || err != nil {
			return err
		}
		// Bulk requests authorize each of their operations on its own.
		if handled, err := p.bulk(q); handled || err != nil {
			return err
		}
		if err := p.authorize(q); err != nil {
			return err
		}
	}
	scrubRequest(q.r.Header)
	if handled, err := p.objectVersioning(q); handled || err != nil {
		return err
	}
	switch {
	case q.object != "":
		return p.objectRequest(q)
	case q.container != "":
		return p.containerRequest(q)
	default:
		return p.accountRequest(q)
	}
}

// parsePath splits /v1/{account}[/{container}[/{object}]] and applies the
// name constraints. Anything else is 404, as in Swift.
func (p *Proxy) parsePath(q *request, path string) error {
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		if rest, ok = strings.CutPrefix(path, "/v1.0/"); !ok {
			return errStatus(http.StatusNotFound)
		}
	}
	parts := strings.SplitN(rest, "/", 3)
	q.account = parts[0]
	if len(parts) > 1 {
		q.container = parts[1]
	}
	if len(parts) > 2 {
		q.object = parts[2]
	}
	if q.account == "" || (q.container == "" && q.object != "") {
		return errStatus(http.StatusNotFound)
	}
	for _, n := range []string{q.account, q.container, q.object} {
		if !utf8.ValidString(n) || strings.IndexByte(n, 0) >= 0 {
			return errText(http.StatusPreconditionFailed, "Invalid UTF8 or contains NULL")
		}
	}
	c := p.cfg.Constraints
	switch {
	case len(q.account) > c.MaxAccountNameLength:
		return errHTML(http.StatusBadRequest, fmt.Sprintf("Account name length of %d longer than %d", len(q.account), c.MaxAccountNameLength))
	case len(q.container) > c.MaxContainerNameLength:
		return errHTML(http.StatusBadRequest, fmt.Sprintf("Container name length of %d longer than %d", len(q.container), c.MaxContainerNameLength))
	case len(q.object) > c.MaxObjectNameLength:
		return errHTML(http.StatusBadRequest, fmt.Sprintf("Object name length of %d longer than %d", len(q.object), c.MaxObjectNameLength))
	}
	return nil
}

// methodNotAllowed answers 405 with the methods the resource has.
func methodNotAllowed(allow string) error {
	return &swiftError{status: http.StatusMethodNotAllowed, header: http.Header{"Allow": {allow}}}
}

// backendHeaders starts the headers of a request to storage servers: the
// proxy's timestamp for writes, and the transaction id for their logs. A
// container-sync write keeps the timestamp of the original it copies.
func (p *Proxy) backendHeaders(q *request, timestamp string) http.Header {
	h := http.Header{}
	h.Set("X-Trans-Id", q.transID)
	if timestamp != "" && q.syncTimestamp != "" {
		timestamp = q.syncTimestamp
	}
	if timestamp != "" {
		h.Set("X-Timestamp", timestamp)
	}
	h.Set("User-Agent", "proxy-server "+q.transID)
	return h
}

// copyHeaders copies the client headers that pass matches.
func copyHeaders(dst, src http.Header, pass func(string) bool) {
	for k, vs := range src {
		if pass(k) {
			dst[k] = vs
		}
	}
}

// writerOnly hides a writer's ReadFrom, so that io.CopyBuffer uses the
// buffer it is given.
type writerOnly struct{ io.Writer }

// relay copies a storage server's answer to the client, without the
// internal headers, and streams its body.
func (p *Proxy) relay(q *request, resp *http.Response) error {
	defer resp.Body.Close()
	h := q.w.Header()
	for k, vs := range resp.Header {
		if clientVisible(k, q.owner) {
			h[k] = vs
		}
	}
	q.w.WriteHeader(resp.StatusCode)
	if q.r.Method == http.MethodHead {
		return nil
	}
	// Through a pooled buffer: the ResponseWriter's ReadFrom made the
	// connection allocate 32 KiB for every GET (it splices only from a
	// file or a socket, and a storage server's body is neither), a tenth
	// of a small GET's CPU in allocating and collecting them.
	// A large body goes in larger steps: each is a read that wakes the
	// storage server's writer and a socket write.
	pool := bufpool.For(max(resp.ContentLength, 0))
	buf := pool.Get().(*[]byte)
	defer pool.Put(buf)
	if _, err := io.CopyBuffer(writerOnly{q.w}, resp.Body, *buf); err != nil {
		// The status is out; a cut connection is the only signal left.
		p.log.Debug("response body cut short", "trans_id", q.transID, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// writeStatus answers a write with its status and a few headers.
func writeStatus(q *request, status int, extra http.Header) {
	for k, vs := range extra {
		if clientVisible(k, q.owner) {
			q.w.Header()[k] = vs
		}
	}
	ct, body := errorBody(status)
	if ct == "" {
		ct = "text/html; charset=UTF-8"
	}
	writeBody(q.w, q.r, status, ct, body)
}
