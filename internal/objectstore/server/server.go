package server

import (
	"errors"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
	"log/slog"
	"net/http"
	"path/filepath"
	"syscall"
)

// base is what the object, container and account servers share, as Swift's
// BaseStorageServer: the configuration, the method dispatch and the
// resolution of a request path to a device and hash directory.
type base struct {
	cfg     Config
	log     *slog.Logger
	datadir string // objectsDir, containersDir or accountsDir
	names   int    // name parts of the server's own resource: 1 account, 2 container, 3 object
	routes  map[string]handlerFunc
}

// handlerFunc handles one request. It either writes the whole response and
// returns nil, or writes nothing and returns the error to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func newBase(cfg Config, name, datadir string, names int) (base, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return base{}, err
	}
	return base{cfg: c, log: c.Logger.With("server", name), datadir: datadir, names: names}, nil
}

// route sets the handlers; HEAD is answered by get.
func (b *base) route(put, get, post, del handlerFunc) {
	b.routes = map[string]handlerFunc{
		http.MethodPut:    put,
		http.MethodGet:    get,
		http.MethodHead:   get,
		http.MethodPost:   post,
		http.MethodDelete: del,
	}
}

// ServeHTTP dispatches on the method; see the package doc for the protocol.
func (b *base) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := b.routes[r.Method]
	if !ok {
		w.Header().Set("Allow", "DELETE, GET, HEAD, POST, PUT")
		writeError(w, r, b.log, httpErr(http.StatusMethodNotAllowed, ""))
		return
	}
	if err := h(w, r); err != nil {
		writeError(w, r, b.log, err)
	}
}

// target is a request resolved to its device and hash directory.
type target struct {
	rp      reqPath
	devPath string
	hash    string
	dir     string // <device>/<datadir>/<partition>/<suffix>/<hash>
	// policy is the storage policy of an object (always 0 on the
	// account and container servers, whose databases are not per policy).
	policy int
	// sub names a row below the server's own resource: a container on
	// the account server, an object on the container server.
	sub string
}

// dbPath is the database file of an account or container.
func (t target) dbPath() string { return filepath.Join(t.dir, t.hash+".db") }

// target parses r's path; it may name one row below the server's own
// resource (none on the object server).
func (b *base) target(r *http.Request) (target, error) {
	var t target
	rp, err := parsePath(r.URL.Path, b.names, min(b.names+1, 3))
	if err != nil {
		return t, err
	}
	dev, err := devicePath(&b.cfg, rp.Device)
	if err != nil {
		return t, err
	}
	names := []string{rp.Account, rp.Container, rp.Object}
	t.rp, t.devPath = rp, dev
	t.hash = hashPath(b.cfg.HashPathPrefix, b.cfg.HashPathSuffix, names[:b.names]...)
	datadir := b.datadir
	if b.names == 3 {
		p, err := b.requestPolicy(r)
		if err != nil {
			return t, err
		}
		t.policy, datadir = p.Index, policy.ObjectsDir(p.Index)
	}
	t.dir = hashDir(dev, datadir, rp.Partition, t.hash)
	if b.names < 3 {
		t.sub = names[b.names]
	}
	return t, nil
}

// requestPolicy is the storage policy an object request names in
// X-Backend-Storage-Policy-Index (policy 0 when absent). An index this
// node does not know is 503, as in Swift: the node's configuration lags
// the cluster's, and another node may serve the request.
func (b *base) requestPolicy(r *http.Request) (policy.Policy, error) {
	p, err := b.cfg.Policies.FromHeader(r.Header.Get("X-Backend-Storage-Policy-Index"))
	if err != nil {
		return p, httpErr(http.StatusServiceUnavailable, "No policy with index "+r.Header.Get("X-Backend-Storage-Policy-Index"))
	}
	return p, nil
}

// ownTarget is target for requests that may not name a row.
func (b *base) ownTarget(r *http.Request) (target, error) {
	t, err := b.target(r)
	if err == nil && t.sub != "" {
		return t, httpErr(http.StatusBadRequest, "invalid path")
	}
	return t, err
}

// writeTarget is target for writes, which carry a required X-Timestamp.
func (b *base) writeTarget(r *http.Request) (target, Timestamp, error) {
	t, err := b.target(r)
	if err != nil {
		return t, Timestamp{}, err
	}
	ts, err := requestTimestamp(r, "X-Timestamp")
	return t, ts, err
}

func conflict(ts Timestamp) error {
	return httpErrHeaders(http.StatusConflict, http.Header{"X-Backend-Timestamp": {ts.Internal()}})
}

// storageErr maps disk failures to the status Swift gives them.
func storageErr(err error) error {
	switch {
	case errors.Is(err, ErrNoXattr):
		// Operators need the reason; clients get the status only.
		slog.Error("device cannot store objects", "err", err)
		return httpErr(http.StatusInsufficientStorage, "")
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EROFS):
		return httpErr(http.StatusInsufficientStorage, "")
	}
	return err
}

// writeEmpty answers a write with an empty body.
func writeEmpty(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}
