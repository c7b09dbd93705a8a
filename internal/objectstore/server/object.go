package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/bodyhash"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/bufpool"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/swiftfmt"
)

// ObjectServer stores object data and metadata on local devices and answers
// Swift's internal object protocol. It also owns the async-pending updater
// and the object auditor, which work on the same devices.
type ObjectServer struct {
	base
}

var _ http.Handler = (*ObjectServer)(nil)

// NewObjectServer returns the object server for cfg's devices.
func NewObjectServer(cfg Config) (*ObjectServer, error) {
	b, err := newBase(cfg, "object", objectsDir, 3)
	if err != nil {
		return nil, err
	}
	s := &ObjectServer{base: b}
	s.route(s.put, s.get, s.post, s.delete)
	s.routes[MethodReplicate], s.routes[MethodSync] = s.replicate, s.sync
	return s, nil
}

// name is the object's /account/container/object.
func (t target) name() string {
	return "/" + t.rp.Account + "/" + t.rp.Container + "/" + t.rp.Object
}

func notFound(of objectFiles) error {
	h := http.Header{}
	if n := of.newest(); !n.IsZero() {
		h.Set("X-Backend-Timestamp", n.Internal())
	}
	return httpErrHeaders(http.StatusNotFound, h)
}

func (s *ObjectServer) put(w http.ResponseWriter, r *http.Request) error {
	t, ts, err := s.writeTarget(r)
	if err != nil {
		return err
	}
	cl := r.ContentLength
	chunked := len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked"
	if cl < 0 && !chunked {
		return httpErr(http.StatusLengthRequired, "Missing Content-Length")
	}
	if cl > s.cfg.MaxFileSize {
		return httpErr(http.StatusRequestEntityTooLarge, "Your request is too large.")
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return httpErr(http.StatusBadRequest, "No content type")
	}
	deleteAt, err := parseDeleteAt(r.Header)
	if err != nil {
		return err
	}
	if err := checkMetadata(r.Header, "X-Object-Meta-"); err != nil {
		return err
	}
	of, err := listObjectDir(t.dir)
	if err != nil {
		return err
	}
	if n := of.newest(); !n.IsZero() && n.Compare(ts) >= 0 {
		return conflict(n)
	}
	if r.Header.Get("If-None-Match") == "*" && of.exists() {
		if _, obj, err := openObjectDir(t.dir); err == nil && obj != nil {
			live := !expired(obj.md, time.Now())
			obj.Close()
			if live {
				return httpErr(http.StatusPreconditionFailed, "")
			}
		}
	}

	dw, err := newDiskWriterIn(t.devPath, t.dir)
	if err != nil {
		return storageErr(err)
	}
	defer dw.abort()
	// A proxy in this process hashes the body once for all its replicas.
	digest := bodyhash.FromContext(r.Context())
	dw.hashed = digest == nil
	if cl > writeBehind {
		if err := dw.preallocate(cl); err != nil {
			return storageErr(err)
		}
	}
	limit := cl
	if chunked {
		limit = s.cfg.MaxFileSize + 1
	}
	if err := receive(dw, r.Body, limit, cl >= 0); err != nil {
		return err
	}
	if chunked && dw.n > s.cfg.MaxFileSize {
		return httpErr(http.StatusRequestEntityTooLarge, "Your request is too large.")
	}
	etag := dw.etag()
	if digest != nil {
		if etag, err = digest.Sum(r.Context(), dw.n); err != nil {
			return fmt.Errorf("object body digest: %w", err)
		}
	}
	if want := strings.Trim(strings.ToLower(r.Header.Get("ETag")), `"`); want != "" && want != etag {
		return httpErr(http.StatusUnprocessableEntity, "")
	}
	md := map[string]string{
		"name":           t.name(),
		"X-Timestamp":    ts.Internal(),
		"Content-Type":   ct,
		"ETag":           etag,
		"Content-Length": strconv.FormatInt(dw.n, 10),
		dataChecksumKey:  dw.checksum(),
	}
	for k, vs := range r.Header {
		if isObjectUserMeta(k) || strings.HasPrefix(k, "X-Object-Sysmeta-") {
			md[k] = vs[0]
		}
	}
	for _, k := range objectAllowedHeaders {
		if v := r.Header.Get(k); v != "" {
			md[k] = v
		}
	}
	if deleteAt != "" {
		md["X-Delete-At"] = deleteAt
	}
	durable, err := dw.publish(md, t.dir, ts.Internal()+".data")
	if err != nil {
		return storageErr(err)
	}
	// The object is in place; what is left is the container updates and
	// making the object durable, in that order. A container server on
	// this filesystem makes its listing row durable with a sync that began
	// after the row, so after the object: when the update returns, that
	// sync has made the object durable too and durable answers at once.
	// The object and its listing cost one sync together, where making the
	// object durable first (or beside the update) made the row wait for
	// the next. (With the container elsewhere, the object waits for a
	// sync of its own after the update; under load one has usually run.)
	s.containerUpdate(r, t, http.MethodPut, ts, containerUpdateFields(md, r.Header))
	s.deleteAtUpdate(r, t, ts, deleteAt)
	if err := durable(); err != nil {
		return storageErr(err)
	}
	// Older versions go only once the new one is durable. A hash dir that
	// held nothing before has nothing to clean (a concurrent write of the
	// same name leaves an obsolete file that the replicator's next
	// recomputation of the suffix, invalidated by both, removes).
	if !of.empty() {
		if _, err := cleanupObjectDir(t.dir, s.cfg.ReclaimAge); err != nil {
			s.log.Warn("cleanup after put", "dir", t.dir, "err", err)
		}
	}
	w.Header().Set("ETag", etag)
	writeEmpty(w, http.StatusCreated)
	return nil
}

// Prefixes of the headers that replace fields of an object's container
// update: the first sent with one request, the second persisted as
// system metadata (Swift's slo sends the ETag with slo_etag this way).
const (
	backendOverridePrefix = "X-Backend-Container-Update-Override-"
	sysmetaOverridePrefix = "X-Object-Sysmeta-Container-Update-Override-"
)

// containerUpdateFields are the listing fields of an object's container
// update: size, content type and ETag from its metadata md, then the
// overrides of req and md, the persisted ones last so that they win, as
// in Swift's _check_container_override.
func containerUpdateFields(md map[string]string, req http.Header) map[string]string {
	u := map[string]string{
		"X-Size":         md["Content-Length"],
		"X-Content-Type": md["Content-Type"],
		"X-Etag":         md["ETag"],
	}
	for k, vs := range req {
		if f, ok := strings.CutPrefix(k, backendOverridePrefix); ok && f != "" && len(vs) > 0 {
			u["X-"+f] = vs[0]
		}
	}
	for k, v := range md {
		if f, ok := strings.CutPrefix(k, sysmetaOverridePrefix); ok && f != "" {
			u["X-"+f] = v
		}
	}
	return u
}

// postContentType is the content type a POST's .meta records: the
// request's, or else the one an earlier POST set, because each .meta
// replaces the one before it whole.
func postContentType(r *http.Request, dir string, of objectFiles) (string, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		return ct, nil
	}
	if of.meta == "" {
		return "", nil
	}
	prev, err := readMetadata(filepath.Join(dir, of.meta))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil // replaced meanwhile; the newer POST decides
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", of.meta, err)
	}
	return prev["Content-Type"], nil
}

// receive copies the request body into dw. A body that ends early or fails
// is a client disconnect (499); a disk failure is answered as such.
func receive(dw *diskWriter, body io.Reader, limit int64, exact bool) error {
	pool := bufpool.For(limit)
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	buf := *bp
	var got int64
	for got < limit {
		want := int64(len(buf))
		if limit-got < want {
			want = limit - got
		}
		n, rerr := body.Read(buf[:want])
		if n > 0 {
			if _, err := dw.Write(buf[:n]); err != nil {
				return storageErr(err)
			}
			got += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			var mbe *http.MaxBytesError
			if errors.As(rerr, &mbe) {
				return httpErr(http.StatusRequestEntityTooLarge, "Your request is too large.")
			}
			return httpErr(499, "client disconnected")
		}
	}
	if exact && got != limit {
		return httpErr(499, "client disconnected")
	}
	return nil
}

// objectHeaders sets the response headers describing obj.
func objectHeaders(h http.Header, obj *openObject) {
	for k, v := range obj.md {
		if isObjectUserMeta(k) || strings.HasPrefix(k, "X-Object-Sysmeta-") {
			h.Set(k, v)
		}
	}
	for _, k := range objectAllowedHeaders {
		if v := obj.md[k]; v != "" {
			h.Set(k, v)
		}
	}
	ts := obj.timestamp()
	// A manifest's swift_bytes is for its container listing only.
	h.Set("Content-Type", swiftfmt.CleanContentType(obj.md["Content-Type"]))
	h.Set("ETag", obj.md["ETag"])
	h.Set("Last-Modified", ts.lastModified().Format(http.TimeFormat))
	h.Set("X-Timestamp", ts.Normal())
	h.Set("X-Backend-Timestamp", ts.Internal())
	h.Set("X-Backend-Data-Timestamp", obj.files.dataTS.Internal())
	h.Set("X-Backend-Durable-Timestamp", obj.files.dataTS.Internal())
	h.Set("Accept-Ranges", "bytes")
}

func (s *ObjectServer) get(w http.ResponseWriter, r *http.Request) error {
	t, err := s.target(r)
	if err != nil {
		return err
	}
	of, obj, err := openObjectDir(t.dir)
	if errors.Is(err, errNoMetadata) {
		s.quarantine(t.devPath, t.dir, of.data, err.Error())
		return httpErr(http.StatusNotFound, "")
	}
	if err != nil {
		return err
	}
	if obj == nil {
		return notFound(of)
	}
	defer obj.Close()
	// Replication reads (X-Backend-Replication: True) must see expired
	// objects too, or replicas would disagree until the expirer runs.
	if expired(obj.md, time.Now()) && !strings.EqualFold(r.Header.Get("X-Backend-Replication"), "true") {
		return notFound(of)
	}
	if obj.md["Content-Length"] != strconv.FormatInt(obj.size, 10) {
		s.quarantine(t.devPath, t.dir, of.data, "size does not match metadata")
		return httpErr(http.StatusNotFound, "")
	}
	h := w.Header()
	objectHeaders(h, obj)
	if err := checkConditions(r, obj.md["ETag"], obj.timestamp().lastModified()); err != nil {
		return err
	}
	// A full GET is checksummed on the way out; a mismatch quarantines the
	// file so the next read (here or on another replica) is good.
	var src io.ReadSeeker = obj.f
	var check *checkingReader
	if r.Method == http.MethodGet && r.Header.Get("Range") == "" {
		if obj.size <= wholeReadMax {
			return s.serveWhole(w, t, of, obj)
		}
		check = newCheckingReader(obj.f, obj.md)
		defer check.close()
		src = check
	}
	if err := serveBody(w, r, src, obj.size, obj.md["Content-Type"]); err != nil {
		var se *statusError
		if errors.As(err, &se) {
			return err
		}
		// Headers are out; the only honest signal left is a cut connection.
		s.log.Debug("object body stream ended early", "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	}
	if check != nil && check.n == obj.size && !check.matches(r.Context()) {
		s.quarantine(t.devPath, t.dir, of.data, "checksum mismatch on read")
	}
	return nil
}

// wholeReadMax is the largest object serveWhole reads at once.
const wholeReadMax = 64 << 10

// serveWhole answers a full GET of an object that fits in one copy
// buffer (most objects by count) from a single read. The bytes are
// checked against the ETag before anything is sent, so a corrupted
// replica answers 404, which sends the proxy to another replica, where a
// streamed GET can only cut the connection after the headers went out.
func (s *ObjectServer) serveWhole(w http.ResponseWriter, t target, of objectFiles, obj *openObject) error {
	bp := bufpool.Small.Get().(*[]byte)
	defer bufpool.Small.Put(bp)
	buf := *bp
	if int64(cap(buf)) < obj.size {
		buf = make([]byte, obj.size)
	}
	buf = buf[:obj.size]
	if _, err := obj.f.ReadAt(buf, 0); err != nil {
		return storageErr(fmt.Errorf("read %s: %w", obj.f.Name(), err))
	}
	if !dataIntact(buf, obj.md) {
		s.quarantine(t.devPath, t.dir, of.data, "checksum mismatch on read")
		return httpErr(http.StatusNotFound, "")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf) // a client that left is no one's error
	return nil
}

func (s *ObjectServer) post(w http.ResponseWriter, r *http.Request) error {
	t, ts, err := s.writeTarget(r)
	if err != nil {
		return err
	}
	deleteAt, err := parseDeleteAt(r.Header)
	if err != nil {
		return err
	}
	if err := checkMetadata(r.Header, "X-Object-Meta-"); err != nil {
		return err
	}
	of, obj, err := openObjectDir(t.dir)
	if err != nil {
		return err
	}
	if obj == nil {
		return notFound(of)
	}
	cur := obj.timestamp()
	isExpired := expired(obj.md, time.Now())
	curMD := obj.md
	obj.Close()
	if isExpired {
		return notFound(of)
	}
	if cur.Compare(ts) >= 0 {
		return conflict(cur)
	}
	md := map[string]string{"name": t.name(), "X-Timestamp": ts.Internal()}
	for k, vs := range r.Header {
		if isObjectUserMeta(k) {
			md[k] = vs[0]
		}
	}
	for _, k := range objectAllowedHeaders {
		if k == "X-Static-Large-Object" {
			continue
		}
		if v := r.Header.Get(k); v != "" {
			md[k] = v
		}
	}
	if deleteAt != "" {
		md["X-Delete-At"] = deleteAt
	}
	ct, err := postContentType(r, t.dir, of)
	if err != nil {
		return err
	}
	if ct != "" {
		md["Content-Type"] = ct
	}
	if err := writeFileAtomic(t.devPath, t.dir, ts.Internal()+".meta", nil, md); err != nil {
		return storageErr(err)
	}
	if _, err := cleanupObjectDir(t.dir, s.cfg.ReclaimAge); err != nil {
		s.log.Warn("cleanup after post", "dir", t.dir, "err", err)
	}
	// The proxy names container servers only when the listing changes (a
	// new content type); the row keeps the data's size and ETag.
	s.containerUpdate(r, t, http.MethodPut, ts, containerUpdateFields(mergeMeta(curMD, md), nil))
	s.deleteAtUpdate(r, t, ts, deleteAt)
	writeEmpty(w, http.StatusAccepted)
	return nil
}

func (s *ObjectServer) delete(w http.ResponseWriter, r *http.Request) error {
	t, ts, err := s.writeTarget(r)
	if err != nil {
		return err
	}
	// A malformed guard is the client's error whether or not the object
	// exists, as in Swift.
	if ida := r.Header.Get("X-If-Delete-At"); ida != "" {
		if _, err := strconv.ParseInt(ida, 10, 64); err != nil {
			return httpErr(http.StatusBadRequest, "Bad X-If-Delete-At header value")
		}
	}
	of, obj, err := openObjectDir(t.dir)
	if err != nil && !errors.Is(err, errNoMetadata) {
		return err
	}
	status := http.StatusNotFound
	if obj != nil {
		md := obj.md
		obj.Close()
		if ida := r.Header.Get("X-If-Delete-At"); ida != "" && ida != md["X-Delete-At"] {
			return httpErr(http.StatusPreconditionFailed, "X-If-Delete-At mismatch")
		}
		if !expired(md, time.Now()) {
			status = http.StatusNoContent
		}
	} else if r.Header.Get("X-If-Delete-At") != "" {
		return notFound(of)
	}
	orig := of.newest()
	switch c := orig.Compare(ts); {
	case c > 0 || (c == 0 && of.data != ""):
		return conflict(orig)
	case c == 0:
		// The same DELETE again (a retry): already applied.
	default:
		md := map[string]string{"name": t.name(), "X-Timestamp": ts.Internal()}
		if err := writeFileAtomic(t.devPath, t.dir, ts.Internal()+".ts", nil, md); err != nil {
			return storageErr(err)
		}
		if _, err := cleanupObjectDir(t.dir, s.cfg.ReclaimAge); err != nil {
			s.log.Warn("cleanup after delete", "dir", t.dir, "err", err)
		}
		s.containerUpdate(r, t, http.MethodDelete, ts, nil)
	}
	w.Header().Set("X-Backend-Timestamp", ts.Internal())
	if status == http.StatusNotFound {
		return httpErrHeaders(status, http.Header{"X-Backend-Timestamp": {ts.Internal()}})
	}
	w.WriteHeader(status)
	return nil
}

// quarantine moves an object's hash dir out of the data dir so that it is no
// longer served and replication restores a good copy. only names the data
// file that was found bad: if a newer write replaced it meanwhile, nothing
// is moved.
func (s *ObjectServer) quarantine(devPath, dir, dataFile, reason string) {
	if dataFile != "" {
		if of, err := listObjectDir(dir); err != nil || of.data != dataFile {
			return
		}
	}
	dst, err := quarantineHashDir(devPath, dir)
	if err != nil {
		s.log.Error("quarantine failed", "dir", dir, "reason", reason, "err", err)
		return
	}
	s.log.Warn("object quarantined", "dir", dir, "to", dst, "reason", reason)
}

// quarantineHashDir renames dir to quarantined/objects[-N]/<hash>[-n],
// keeping the policy's data dir name as Swift does.
func quarantineHashDir(devPath, dir string) (string, error) {
	// dir is <dev>/<objects[-N]>/<partition>/<suffix>/<hash>.
	datadir := filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(dir))))
	if datadir != objectsDir && !strings.HasPrefix(datadir, objectsDir+"-") {
		datadir = objectsDir
	}
	qdir := filepath.Join(devPath, quarantineDir, datadir)
	if err := os.MkdirAll(qdir, 0o750); err != nil {
		return "", fmt.Errorf("create quarantine dir: %w", err)
	}
	base := filepath.Base(dir)
	dst := filepath.Join(qdir, base)
	for i := 1; ; i++ {
		err := os.Rename(dir, dst)
		if err == nil {
			suffixHashCache.invalidateHashDir(dir)
			break
		}
		if !errors.Is(err, os.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) || i > 100 {
			return "", fmt.Errorf("quarantine %s: %w", dir, err)
		}
		dst = filepath.Join(qdir, fmt.Sprintf("%s-%d", base, i))
	}
	if err := fsyncPath(qdir); err != nil {
		return dst, err
	}
	return dst, fsyncPath(filepath.Dir(dir))
}
