package imagestore

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Swift segment limits. Segments above the segment size go to
// <container>_segments under one SLO manifest, which Swift (and Nimbus's
// proxy) caps at 1000 segments by default; 5 GiB is Swift's largest
// object.
const (
	DefaultSwiftSegmentSize = 200 << 20
	maxSwiftSegmentSize     = 5 << 30
	maxSwiftSegments        = 1000
	// DefaultSwiftContainer is Glance's swift_store_container.
	DefaultSwiftContainer = "glance"
)

// SwiftAuth gives a Swift store its credentials.
type SwiftAuth interface {
	// Auth returns a token and the storage URL of the account the images
	// live in (…/v1/AUTH_<project>). With renew, a token the object
	// service refused is replaced instead of handed out again.
	Auth(ctx context.Context, renew bool) (token, storageURL string, err error)
}

// SwiftAuthFunc adapts a function to SwiftAuth.
type SwiftAuthFunc func(ctx context.Context, renew bool) (token, storageURL string, err error)

// Auth implements SwiftAuth.
func (f SwiftAuthFunc) Auth(ctx context.Context, renew bool) (string, string, error) {
	return f(ctx, renew)
}

// SwiftConfig configures a Swift store.
type SwiftConfig struct {
	// ID is the store id shown in /v2/info/stores; it is also the
	// reference in the store's swift+config:// locations.
	ID string
	// Auth supplies the token and account of the image service's own
	// user (Glance's single-tenant mode).
	Auth SwiftAuth
	// Container holds the images; DefaultSwiftContainer when empty. It,
	// and <container>_segments, are created on first use.
	Container string
	// MultipleContainersSeed, 0 to 32, spreads images over containers
	// named <container>_<first N characters of the image id>, as Glance's
	// swift_store_multiple_containers_seed, so that no one container's
	// listing grows with every image of the cloud.
	MultipleContainersSeed int
	// SegmentSize is the largest image stored as one object; larger ones
	// are stored as SLO segments of this size. DefaultSwiftSegmentSize
	// when 0.
	SegmentSize int64
	// HTTPClient sends the requests; http.DefaultClient when nil. It must
	// not have an overall timeout: bodies are streamed.
	HTTPClient *http.Client
}

// Swift stores images as objects in Swift (Nimbus's object storage or
// any Swift cluster), as Glance's swift store in single-tenant mode: one
// account, the image service's, with images in container "glance" and
// segments of large ones in "glance_segments".
type Swift struct {
	cfg    SwiftConfig
	client *http.Client

	mu      sync.Mutex
	created map[string]bool // containers known to exist; guarded by mu
}

var _ Store = (*Swift)(nil)

// NewSwift returns a Swift store. It does not contact the service.
func NewSwift(cfg SwiftConfig) (*Swift, error) {
	if cfg.ID == "" {
		return nil, errors.New("swift store: id is required")
	}
	if cfg.Auth == nil {
		return nil, errors.New("swift store: auth is required")
	}
	if cfg.Container == "" {
		cfg.Container = DefaultSwiftContainer
	}
	if strings.Contains(cfg.Container, "/") {
		return nil, fmt.Errorf("swift store: container %q contains '/'", cfg.Container)
	}
	if cfg.MultipleContainersSeed < 0 || cfg.MultipleContainersSeed > 32 {
		return nil, fmt.Errorf("swift store: multiple containers seed %d outside [0, 32]", cfg.MultipleContainersSeed)
	}
	if cfg.SegmentSize == 0 {
		cfg.SegmentSize = DefaultSwiftSegmentSize
	}
	if cfg.SegmentSize < 1 || cfg.SegmentSize > maxSwiftSegmentSize {
		return nil, fmt.Errorf("swift store: segment size %d outside [1, %d]", cfg.SegmentSize, int64(maxSwiftSegmentSize))
	}
	client := cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	return &Swift{cfg: cfg, client: client, created: map[string]bool{}}, nil
}

// ID implements Store.
func (s *Swift) ID() string { return s.cfg.ID }

// Description implements Store.
func (s *Swift) Description() string {
	return fmt.Sprintf("Object storage (Swift) container %s", s.cfg.Container)
}

// ReadOnly implements Store.
func (s *Swift) ReadOnly() bool { return false }

// containerFor returns the container of imageID.
func (s *Swift) containerFor(imageID string) string {
	if n := s.cfg.MultipleContainersSeed; n > 0 {
		return s.cfg.Container + "_" + imageID[:min(n, len(imageID))]
	}
	return s.cfg.Container
}

// location returns the Location of an object, in Glance's swift+config
// form: the store id stands for the account and credentials, which the
// store's configuration holds, so moving the object service's endpoint
// does not invalidate stored locations.
func (s *Swift) location(container, object string) Location {
	u := url.URL{Scheme: "swift+config", Host: s.cfg.ID, Path: "/" + container + "/" + object}
	return Location{Store: s.cfg.ID, URL: u.String()}
}

// objectOf returns the container and object of loc, refusing locations
// of other stores.
func (s *Swift) objectOf(loc Location) (container, object string, err error) {
	u, err := url.Parse(loc.URL)
	if err != nil {
		return "", "", fmt.Errorf("parse location %q: %w", loc.URL, err)
	}
	if u.Scheme != "swift+config" || u.Host != s.cfg.ID {
		return "", "", fmt.Errorf("location %q is not in swift+config://%s", loc.URL, s.cfg.ID)
	}
	container, object, _ = strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if container == "" || object == "" {
		return "", "", fmt.Errorf("location %q has no container and object", loc.URL)
	}
	return container, object, nil
}

// segmentName is the name of segment n (from 1) of object, as Glance
// names its chunks.
func segmentName(object string, n int) string { return fmt.Sprintf("%s-%05d", object, n) }

// Put implements Store. The data streams straight into Swift, one
// segment at a time, with no buffering: the first SegmentSize bytes go to
// the image's own object, which is all there is for an image that fits.
// A larger image has that object copied to its first segment, the rest
// streamed to further segments, and an SLO manifest stored in its place.
// Every object's ETag is checked against the MD5 computed on the way. On
// failure the object and every segment written are deleted.
func (s *Swift) Put(ctx context.Context, imageID string, r io.Reader) (Location, int64, error) {
	if imageID == "" || strings.Contains(imageID, "/") {
		return Location{}, 0, fmt.Errorf("swift put: bad image id %q", imageID)
	}
	container, object := s.containerFor(imageID), imageID
	segments := container + "_segments"
	loc, size, err := s.put(ctx, container, segments, object, r)
	if err != nil {
		// Clean up even when ctx is done: partial data would stay forever.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if derr := s.deleteAll(cctx, container, object); derr != nil {
			err = errors.Join(err, fmt.Errorf("remove partial upload: %w", derr))
		}
		return Location{}, 0, fmt.Errorf("swift put %s/%s: %w", container, object, err)
	}
	return loc, size, nil
}

func (s *Swift) put(ctx context.Context, container, segments, object string, r io.Reader) (Location, int64, error) {
	if err := s.ensureContainer(ctx, container); err != nil {
		return Location{}, 0, err
	}
	src := &sourceReader{r: r}
	first, err := s.putStream(ctx, container, object, io.LimitReader(src, s.cfg.SegmentSize), src)
	if err != nil {
		return Location{}, 0, err
	}
	more := false
	br := bufio.NewReaderSize(src, 16)
	if first.size == s.cfg.SegmentSize {
		_, perr := br.Peek(1)
		switch {
		case perr == nil:
			more = true
		case perr != io.EOF:
			return Location{}, 0, fmt.Errorf("read image data: %w", perr)
		}
	}
	if !more {
		return s.location(container, object), first.size, nil
	}

	if err := s.ensureContainer(ctx, segments); err != nil {
		return Location{}, 0, err
	}
	seg1 := segmentName(object, 1)
	if err := s.copyObject(ctx, container+"/"+object, segments, seg1); err != nil {
		return Location{}, 0, err
	}
	manifest := []sloEntry{{Path: "/" + segments + "/" + seg1, Etag: first.etag, SizeBytes: first.size}}
	size := first.size
	for {
		if len(manifest) == maxSwiftSegments {
			return Location{}, 0, fmt.Errorf("image exceeds %d segments of %d bytes", maxSwiftSegments, s.cfg.SegmentSize)
		}
		name := segmentName(object, len(manifest)+1)
		seg, err := s.putStream(ctx, segments, name, io.LimitReader(br, s.cfg.SegmentSize), src)
		if err != nil {
			return Location{}, 0, err
		}
		if seg.size == 0 {
			// The data ended on a segment boundary.
			if err := s.deleteObject(ctx, segments, name, ""); err != nil {
				return Location{}, 0, err
			}
			break
		}
		manifest = append(manifest, sloEntry{Path: "/" + segments + "/" + name, Etag: seg.etag, SizeBytes: seg.size})
		size += seg.size
		if seg.size < s.cfg.SegmentSize {
			break
		}
	}
	if err := s.putManifest(ctx, container, object, manifest); err != nil {
		return Location{}, 0, err
	}
	return s.location(container, object), size, nil
}

// sourceReader remembers the error of the image data source, so that a
// failed upload says the client's data stopped rather than that the
// object service hung up.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// stored is one object written: its size and MD5.
type stored struct {
	size int64
	etag string
}

// countingHash hashes and counts what is read through it.
type countingHash struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (c *countingHash) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// putStream streams body into one object with chunked transfer encoding
// and checks the ETag Swift answers against the MD5 of what was sent.
func (s *Swift) putStream(ctx context.Context, container, object string, body io.Reader, src *sourceReader) (stored, error) {
	ch := &countingHash{r: body, h: md5.New()}
	resp, err := s.send(ctx, http.MethodPut, container, object, nil, nil, ch)
	if src.err != nil {
		if resp != nil {
			drainClose(resp.Body)
		}
		return stored{}, fmt.Errorf("read image data: %w", src.err)
	}
	if err != nil {
		return stored{}, err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return stored{}, swiftResponseError("put object "+container+"/"+object, resp)
	}
	sum := hex.EncodeToString(ch.h.Sum(nil))
	if got := strings.Trim(resp.Header.Get("Etag"), `"`); got != sum {
		return stored{}, fmt.Errorf("put object %s/%s: etag %q, sent data with md5 %s", container, object, got, sum)
	}
	return stored{size: ch.n, etag: sum}, nil
}

// ensureContainer creates container unless this store already did.
func (s *Swift) ensureContainer(ctx context.Context, container string) error {
	s.mu.Lock()
	done := s.created[container]
	s.mu.Unlock()
	if done {
		return nil
	}
	resp, err := s.send(ctx, http.MethodPut, container, "", nil, nil, nil)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted {
		return swiftResponseError("create container "+container, resp)
	}
	s.mu.Lock()
	s.created[container] = true
	s.mu.Unlock()
	return nil
}

// copyObject copies from (container/object) to container/object on the
// server side.
func (s *Swift) copyObject(ctx context.Context, from, container, object string) error {
	h := http.Header{"X-Copy-From": {escapePath(from)}}
	resp, err := s.send(ctx, http.MethodPut, container, object, nil, h, nil)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return swiftResponseError("copy "+from+" to "+container+"/"+object, resp)
	}
	return nil
}

// sloEntry is one segment of an uploaded SLO manifest.
type sloEntry struct {
	Path      string `json:"path"`
	Etag      string `json:"etag"`
	SizeBytes int64  `json:"size_bytes"`
}

// putManifest stores the SLO manifest of segs at container/object,
// asking Swift to check the large object's ETag.
func (s *Swift) putManifest(ctx context.Context, container, object string, segs []sloEntry) error {
	body, err := json.Marshal(segs)
	if err != nil {
		return fmt.Errorf("encode slo manifest: %w", err)
	}
	etag := md5.New()
	for _, sg := range segs {
		etag.Write([]byte(sg.Etag))
	}
	h := http.Header{"Etag": {hex.EncodeToString(etag.Sum(nil))}, "Content-Type": {"application/octet-stream"}}
	q := url.Values{"multipart-manifest": {"put"}}
	resp, err := s.send(ctx, http.MethodPut, container, object, q, h, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return swiftResponseError("put slo manifest "+container+"/"+object, resp)
	}
	return nil
}

// Get implements Store. The proxy assembles segmented images and honours
// Range on them as on plain objects.
func (s *Swift) Get(ctx context.Context, loc Location, offset, length int64) (io.ReadCloser, error) {
	container, object, err := s.objectOf(loc)
	if err != nil {
		return nil, fmt.Errorf("swift get: %w", err)
	}
	rc, err := rangedGet(offset, length, func(h http.Header) (*http.Response, error) {
		return s.send(ctx, http.MethodGet, container, object, nil, h, nil)
	}, func(resp *http.Response) error {
		return swiftResponseError("get object", resp)
	})
	if err != nil {
		return nil, fmt.Errorf("swift get %s/%s: %w", container, object, err)
	}
	return rc, nil
}

// Delete implements Store: the object, or the manifest and every segment
// of a segmented image, then any segment of the image left by an upload
// that died half-way.
func (s *Swift) Delete(ctx context.Context, loc Location) error {
	container, object, err := s.objectOf(loc)
	if err != nil {
		return fmt.Errorf("swift delete: %w", err)
	}
	if err := s.deleteAll(ctx, container, object); err != nil {
		return fmt.Errorf("swift delete %s/%s: %w", container, object, err)
	}
	return nil
}

func (s *Swift) deleteAll(ctx context.Context, container, object string) error {
	resp, err := s.send(ctx, http.MethodHead, container, object, nil, nil, nil)
	if err != nil {
		return err
	}
	drainClose(resp.Body)
	switch {
	case resp.StatusCode == http.StatusNotFound:
	case resp.StatusCode/100 != 2:
		return swiftResponseError("head object", resp)
	case strings.EqualFold(resp.Header.Get("X-Static-Large-Object"), "true"):
		if err := s.deleteObject(ctx, container, object, "delete"); err != nil {
			return err
		}
	default:
		if err := s.deleteObject(ctx, container, object, ""); err != nil {
			return err
		}
	}
	return s.deleteSegments(ctx, container+"_segments", object)
}

// deleteObject deletes one object; gone already is fine. manifest
// "delete" deletes an SLO's segments with it.
func (s *Swift) deleteObject(ctx context.Context, container, object, manifest string) error {
	var q url.Values
	var h http.Header
	if manifest != "" {
		q = url.Values{"multipart-manifest": {manifest}}
		h = http.Header{"Accept": {"application/json"}}
	}
	resp, err := s.send(ctx, http.MethodDelete, container, object, q, h, nil)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusNotFound:
		return nil
	case http.StatusOK:
		if manifest == "" {
			return nil
		}
	default:
		return swiftResponseError("delete object "+container+"/"+object, resp)
	}
	// A bulk answer: 200 whatever happened, the outcome in the body.
	var res struct {
		Status string     `json:"Response Status"`
		Errors [][]string `json:"Errors"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&res); err != nil {
		return fmt.Errorf("delete slo %s/%s: decode response: %w", container, object, err)
	}
	if code := strings.SplitN(res.Status, " ", 2)[0]; (code != "200" && code != "404") || len(res.Errors) > 0 {
		return fmt.Errorf("delete slo %s/%s: %s %v", container, object, res.Status, res.Errors)
	}
	return nil
}

// deleteSegments deletes the segments of object left in container.
func (s *Swift) deleteSegments(ctx context.Context, container, object string) error {
	q := url.Values{"format": {"json"}, "prefix": {object + "-"}}
	for {
		resp, err := s.send(ctx, http.MethodGet, container, "", q, nil, nil)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusNotFound {
			drainClose(resp.Body)
			return nil
		}
		if resp.StatusCode/100 != 2 {
			defer drainClose(resp.Body)
			return swiftResponseError("list segments", resp)
		}
		if resp.StatusCode == http.StatusNoContent {
			drainClose(resp.Body)
			return nil
		}
		var list []struct {
			Name string `json:"name"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&list)
		drainClose(resp.Body)
		if err != nil {
			return fmt.Errorf("list segments: %w", err)
		}
		if len(list) == 0 {
			return nil
		}
		for _, o := range list {
			if err := s.deleteObject(ctx, container, o.Name, ""); err != nil {
				return err
			}
		}
		q.Set("marker", list[len(list)-1].Name)
	}
}

// send sends one request to the account, container or object, retrying
// once with a new token when the current one is refused and the body
// can be sent again. A nil body is none; a body other than a
// *strings.Reader is streamed with chunked transfer encoding.
func (s *Swift) send(ctx context.Context, method, container, object string, query url.Values, h http.Header, body io.Reader) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		token, base, err := s.cfg.Auth.Auth(ctx, attempt > 0)
		if err != nil {
			return nil, fmt.Errorf("swift auth: %w", err)
		}
		u := strings.TrimSuffix(base, "/") + "/" + url.PathEscape(container)
		if object != "" {
			u += "/" + escapePath(object)
		}
		if len(query) > 0 {
			u += "?" + query.Encode()
		}
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			return nil, err
		}
		if body == nil {
			req.Body, req.ContentLength = http.NoBody, 0
			if method != http.MethodPut {
				req.Body = nil
			}
		} else if _, ok := body.(*strings.Reader); !ok {
			req.ContentLength = -1
		}
		for k, v := range h {
			req.Header[k] = v
		}
		req.Header.Set("X-Auth-Token", token)
		resp, err := s.client.Do(req)
		if err != nil {
			return nil, err
		}
		sr, rewindable := body.(*strings.Reader)
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 || (body != nil && !rewindable) {
			return resp, nil
		}
		drainClose(resp.Body)
		if rewindable {
			if _, err := sr.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
		}
	}
}

// escapePath escapes each /-separated part of p.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// SwiftError is an error answer from the object service.
type SwiftError struct {
	Op      string // what the store was doing, e.g. "put object glance/<id>"
	Status  int    // HTTP status
	Message string // the start of Swift's (plain text) body
}

func (e *SwiftError) Error() string {
	msg := fmt.Sprintf("%s: swift status %d", e.Op, e.Status)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Is maps Swift answers to the store's sentinels: 413 is an account or
// container quota, 507 a full cluster.
func (e *SwiftError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrFull:
		return e.Status == http.StatusRequestEntityTooLarge || e.Status == http.StatusInsufficientStorage
	}
	return false
}

func swiftResponseError(op string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &SwiftError{Op: op, Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
}
