package image

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/image/diskformat"
	"github.com/nimbus-cloud/nimbus/internal/image/imagestore"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

var errTooLarge = errors.New("image data exceeds the size cap")

// capReader fails with errTooLarge once more than max bytes went through.
type capReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, errTooLarge
	}
	return n, err
}

// ingested is what a store holds after ingest: where, how much, the
// digests computed on the way in and the virtual size read from the
// disk format's header.
type ingested struct {
	loc         imagestore.Location
	size        int64
	checksum    string // hex MD5
	hashValue   string // hex SHA-512 (os_hash_algo sha512)
	virtualSize *int64
}

// errSizeMismatch: the data was not as long as the client declared.
var errSizeMismatch = errors.New("image data size differs from the declared size")

// ingest streams src into st as imageID's data, hashing it and reading
// its disk format's header on the way. limit caps the bytes accepted
// (errTooLarge beyond it); declared >= 0 is the length the client
// announced; diskFormat is the image's declared disk format. Data that
// would make a hypervisor read other files (a qcow2 backing file, a vmdk
// extent pointing elsewhere) is always refused; data that is not in its
// declared format only when the operator requires formats to match. On
// any error nothing is left in st.
func (s *Service) ingest(ctx context.Context, st imagestore.Store, imageID string, src io.Reader, limit, declared int64, diskFormat string) (ingested, error) {
	insp := diskformat.NewInspector(diskFormat)
	dg := newDigester(&capReader{r: src, max: limit}, insp)
	loc, n, err := st.Put(ctx, imageID, dg)
	sum, sha := dg.sums()
	if err == nil && declared >= 0 && n != declared {
		err = fmt.Errorf("%w: got %d bytes, expected %d", errSizeMismatch, n, declared)
	}
	if err == nil {
		err = s.checkFormat(insp)
	}
	if err != nil {
		if loc.URL != "" {
			if derr := st.Delete(context.WithoutCancel(ctx), loc); derr != nil {
				err = fmt.Errorf("%w (and removing the data: %v)", err, derr)
			}
		}
		return ingested{}, err
	}
	in := ingested{loc: loc, size: n, checksum: sum, hashValue: sha}
	if vs, ok := insp.VirtualSize(); ok && insp.Format() == insp.Declared() {
		in.virtualSize = &vs
	}
	return in, nil
}

// errBadDiskData marks data refused by the disk format check.
var errBadDiskData = errors.New("image data refused")

// checkFormat applies the operator's format policy to inspected data.
func (s *Service) checkFormat(insp *diskformat.Inspector) error {
	err := insp.Check()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, diskformat.ErrUnsafe):
		return fmt.Errorf("%w: %w", errBadDiskData, err)
	case s.cfg.RequireFormatMatch:
		return fmt.Errorf("%w: %w", errBadDiskData, err)
	}
	return nil
}

// activate records data stored for an image and makes it active, if the
// image is still in status from: its size and digests, its disk format
// (conversion may have changed it) and the new locations. It reports
// false when the image moved on (deleted meanwhile), in which case the
// caller must remove the data.
func (s *Service) activate(ctx context.Context, imageID, from string, in ingested, diskFormat *string, locs []location) (bool, error) {
	var ok bool
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE images SET status = 'active', size = ?, virtual_size = ?, checksum = ?, os_hash_algo = 'sha512',
			os_hash_value = ?, disk_format = COALESCE(?, disk_format), updated_at = ? WHERE id = ? AND status = ?`,
			in.size, in.virtualSize, in.checksum, in.hashValue, diskFormat, store.FormatTime(time.Now()), imageID, from)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n != 1 {
			return err
		}
		for _, l := range locs {
			if err := addLocation(ctx, tx, imageID, l); err != nil {
				return err
			}
		}
		ok = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("activate image %s: %w", imageID, err)
	}
	return ok, nil
}

// dataError turns a failed ingest into the answer Glance gives.
func (s *Service) dataError(r *http.Request, imageID string, err error, limit int64) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, errQuota):
		return err
	case errors.Is(err, errTooLarge), errors.As(err, &tooBig):
		return api.Errorf(http.StatusRequestEntityTooLarge, "Image exceeds the storage quota of %d bytes.", limit)
	case errors.Is(err, imagestore.ErrFull):
		return api.Errorf(http.StatusRequestEntityTooLarge, "Image storage media is full.")
	case errors.Is(err, errSizeMismatch):
		return api.BadRequest("Image upload failed: %v.", err)
	case errors.Is(err, errBadDiskData):
		return api.BadRequest("Image upload failed: %v.", err)
	}
	s.log.Warn("image data upload failed", "image_id", imageID, "request_id", api.RequestID(r.Context()), "err", err)
	return api.BadRequest("Image upload failed: the data could not be read completely.")
}

// targetStore picks the store a direct upload goes to: the one named by
// Glance's X-Image-Meta-Store header, or the default.
func (s *Service) targetStore(r *http.Request) (imagestore.Store, error) {
	id := r.Header.Get("X-Image-Meta-Store")
	if id == "" {
		id = s.cfg.DefaultStore
	}
	st, ok := s.cfg.Stores[id]
	if !ok {
		return nil, api.BadRequest("Store for identifier %s not found.", id)
	}
	if st.ReadOnly() {
		return nil, api.BadRequest("Store %s is read-only.", id)
	}
	return st, nil
}

// declaredMD5 reads an optional Content-MD5 request header, in hex (what
// Glance sends back) or base64 (RFC 1864).
func declaredMD5(h string) (string, error) {
	if h == "" {
		return "", nil
	}
	if b, err := hex.DecodeString(h); err == nil && len(b) == md5.Size {
		return strings.ToLower(h), nil
	}
	if b, err := base64.StdEncoding.DecodeString(h); err == nil && len(b) == md5.Size {
		return hex.EncodeToString(b), nil
	}
	return "", api.BadRequest("Content-MD5 header is not a valid MD5 digest.")
}

// checkTransfer refuses image data in a body that is not
// application/octet-stream, or for an image that is not queued.
func checkTransfer(r *http.Request, im *image, to string) error {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "" && ct != "application/octet-stream" {
		return api.Errorf(http.StatusUnsupportedMediaType, "Content-Type must be application/octet-stream.")
	}
	if im.Status != "queued" {
		return api.Conflict("Image status transition from %s to %s is not allowed", im.Status, to)
	}
	return nil
}

// beginTransfer moves a queued image to status to (saving for an upload,
// uploading for staging). The first heartbeat is written with the status,
// so a process starting meanwhile never takes the transfer for a dead one.
func (s *Service) beginTransfer(ctx context.Context, id, to string) error {
	now := store.FormatTime(time.Now())
	res, err := s.db.Exec(ctx, `UPDATE images SET status = ?, upload_heartbeat = ?, updated_at = ? WHERE id = ? AND status = 'queued'`,
		to, now, now, id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return api.Conflict("Image %s is not in status queued.", id)
	}
	return nil
}

// uploadImage stores the request body as the image's data: queued →
// saving → active once the store holds it durably; on any failure the
// image goes back to queued and the store keeps nothing.
func (s *Service) uploadImage(r *http.Request) (*api.Response, error) {
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "upload_image", im, nil); err != nil {
		return nil, err
	}
	if err := checkTransfer(r, im, "saving"); err != nil {
		return nil, err
	}
	if im.DiskFormat == nil || im.ContainerFormat == nil {
		return nil, api.BadRequest("Properties disk_format, container_format must be set prior to saving data.")
	}
	st, err := s.targetStore(r)
	if err != nil {
		return nil, err
	}
	wantMD5, err := declaredMD5(r.Header.Get("Content-MD5"))
	if err != nil {
		return nil, err
	}
	limit, err := s.dataAllowance(r.Context(), im.Owner, r.ContentLength)
	if err != nil {
		return nil, err
	}
	if err := s.beginTransfer(r.Context(), im.ID, "saving"); err != nil {
		return nil, err
	}
	// Book-keeping after the upload must happen even if the client went
	// away, so it runs on a context that is not cancelled with the request.
	bg := context.WithoutCancel(r.Context())
	revert := func() {
		if _, err := s.setStatus(bg, im.ID, "saving", "queued"); err != nil {
			s.log.Error("revert image to queued", "image_id", im.ID, "err", err)
		}
	}
	stop := s.keepAlive(bg, `UPDATE images SET upload_heartbeat = ? WHERE id = ? AND status = 'saving'`, im.ID)
	in, err := s.ingest(r.Context(), st, im.ID, r.Body, limit, r.ContentLength, *im.DiskFormat)
	stop()
	if err == nil && wantMD5 != "" && wantMD5 != in.checksum {
		err = api.BadRequest("Image upload failed: checksum %s does not match Content-MD5 %s.", in.checksum, wantMD5)
		if derr := st.Delete(bg, in.loc); derr != nil {
			s.log.Warn("discard mismatched upload", "image_id", im.ID, "err", derr)
		}
	}
	if err != nil {
		revert()
		var e *api.Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, s.dataError(r, im.ID, err, limit)
	}
	ok, err := s.activate(bg, im.ID, "saving", in, nil, []location{{Location: in.loc}})
	if err != nil || !ok {
		// The image was deleted while uploading (or the database failed):
		// the data must not outlive it.
		s.deleteData(bg, im.ID, []location{{Location: in.loc}})
		if err != nil {
			revert()
			return nil, err
		}
		return nil, api.Errorf(http.StatusGone, "Image %s was deleted during the upload.", im.ID)
	}
	return api.NoContent(), nil
}

// byteRange is a parsed single Range header.
type byteRange struct{ start, length int64 }

// parseRange understands one "bytes=" range, the only form Glance serves.
func parseRange(h string, size int64) (*byteRange, bool) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return nil, false
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return nil, false
	}
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return nil, false
		}
		n = min(n, size)
		return &byteRange{size - n, n}, size > 0
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || start >= size {
		return nil, false
	}
	end := size - 1
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return nil, false
		}
		end = min(e, size-1)
	}
	return &byteRange{start, end - start + 1}, true
}

// serveDownload streams an image's data. It is a plain handler rather
// than an api.Route because api.Response buffers bodies; it performs the
// same token check and renders errors through the same service.
func (s *Service) serveDownload(w http.ResponseWriter, r *http.Request) {
	if err := s.authenticate(r); err != nil {
		s.api.WriteError(w, r, api.AsError(err))
		return
	}
	if err := s.download(w, r); err != nil {
		e := api.AsError(err)
		if e.Status >= 500 {
			s.log.Error("image download failed", "request_id", api.RequestID(r.Context()), "err", err)
		}
		s.api.WriteError(w, r, e)
	}
}

// authenticate validates the request's token as the router does for
// AuthToken routes and records the caller on r.
func (s *Service) authenticate(r *http.Request) error {
	token := r.Header.Get("X-Auth-Token")
	if token == "" || s.api.Tokens == nil {
		return api.Unauthorized("The request you have made requires authentication.")
	}
	ident, err := s.api.Tokens.ValidateToken(r.Context(), token)
	if err != nil {
		var e *api.Error
		if errors.As(err, &e) {
			return e
		}
		return api.Unauthorized("The request you have made requires authentication.")
	}
	*r = *r.WithContext(api.WithCaller(r.Context(), ident))
	return nil
}

func (s *Service) download(w http.ResponseWriter, r *http.Request) error {
	im, err := s.loadImage(r)
	if err != nil {
		return err
	}
	if err := s.authorize(r, "download_image", im, nil); err != nil {
		return err
	}
	if im.Status == "deactivated" && !s.isAdmin(r) {
		return api.Forbidden("The requested image has been deactivated. Image data download is forbidden.")
	}
	if (im.Status != "active" && im.Status != "deactivated") || len(im.Locations) == 0 || im.Size == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	size := *im.Size
	offset, length, status := int64(0), size, http.StatusOK
	if h := r.Header.Get("Range"); h != "" {
		br, ok := parseRange(h, size)
		if !ok {
			e := api.Errorf(http.StatusRequestedRangeNotSatisfiable, "Requested range not satisfiable.")
			e.Header = http.Header{"Content-Range": {fmt.Sprintf("bytes */%d", size)}}
			return e
		}
		offset, length, status = br.start, br.length, http.StatusPartialContent
	}
	rc, err := s.openCachedOrStored(r.Context(), im, offset, length, status == http.StatusOK)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if status == http.StatusPartialContent {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", offset, offset+length-1, size))
	} else if im.Checksum != nil {
		// Glance sends the hex checksum, which clients compare with the
		// image's checksum field.
		h.Set("Content-MD5", *im.Checksum)
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.Copy(w, rc); err != nil {
		// Headers are gone: all that is left is to drop the connection so
		// the client sees a short read rather than a complete-looking body.
		s.log.Warn("image download interrupted", "image_id", im.ID, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// openData opens the image's data at the first location whose store can
// serve it, falling back to the next copy when one is missing.
func (s *Service) openData(ctx context.Context, im *image, offset, length int64) (io.ReadCloser, error) {
	var lastErr error
	for _, l := range im.Locations {
		st, ok := s.cfg.Stores[l.Store]
		if !ok {
			lastErr = fmt.Errorf("image %s is in unknown store %q", im.ID, l.Store)
			continue
		}
		rc, err := st.Get(ctx, l.Location, offset, length)
		if err == nil {
			return rc, nil
		}
		lastErr = err
		if !errors.Is(err, imagestore.ErrNotFound) {
			s.log.Warn("image data unreadable, trying the next location", "image_id", im.ID, "store", l.Store, "err", err)
		}
	}
	if lastErr == nil || errors.Is(lastErr, imagestore.ErrNotFound) {
		return nil, api.NotFound("Image data for %s is not available.", im.ID)
	}
	return nil, lastErr
}

// openCachedOrStored serves the image from this node's cache when it has
// a copy, and otherwise from its store, filling the cache on the way
// when the whole image is read.
func (s *Service) openCachedOrStored(ctx context.Context, im *image, offset, length int64, whole bool) (io.ReadCloser, error) {
	if s.cache != nil {
		if f := s.cache.open(im.ID, *im.Size); f != nil {
			if _, err := f.Seek(offset, io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("cached image %s: %w", im.ID, err)
			}
			return struct {
				io.Reader
				io.Closer
			}{io.LimitReader(f, length), f}, nil
		}
	}
	rc, err := s.openData(ctx, im, offset, length)
	if err != nil || !whole {
		return rc, err
	}
	return s.teeToCache(ctx, im, rc), nil
}
