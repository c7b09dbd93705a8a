package image

import (
	"context"
	"crypto/md5"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/image/imagestore"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// hashingReader hashes and counts what passes through it, so checksums
// are computed while the data streams into the store.
type hashingReader struct {
	r      io.Reader
	md5    hash.Hash
	sha512 hash.Hash
	n      int64
	max    int64
}

var errTooLarge = errors.New("image data exceeds the size cap")

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		h.md5.Write(p[:n])
		h.sha512.Write(p[:n])
		h.n += int64(n)
		if h.n > h.max {
			return n, errTooLarge
		}
	}
	return n, err
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
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "" && ct != "application/octet-stream" {
		return nil, api.Errorf(http.StatusUnsupportedMediaType, "Content-Type must be application/octet-stream.")
	}
	if im.Status != "queued" {
		return nil, api.Conflict("Image status transition from %s to saving is not allowed", im.Status)
	}
	if im.DiskFormat == nil || im.ContainerFormat == nil {
		return nil, api.BadRequest("Properties disk_format, container_format must be set prior to saving data.")
	}
	if r.ContentLength > s.cfg.MaxImageSize {
		return nil, api.Errorf(http.StatusRequestEntityTooLarge, "Image exceeds the storage quota of %d bytes.", s.cfg.MaxImageSize)
	}
	// The first heartbeat is written with the status, so a process
	// starting meanwhile never takes this upload for a dead one.
	now := store.FormatTime(time.Now())
	res, err := s.db.Exec(r.Context(), `UPDATE images SET status = 'saving', upload_heartbeat = ?, updated_at = ? WHERE id = ? AND status = 'queued'`,
		now, now, im.ID)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, err
	} else if n != 1 {
		return nil, api.Conflict("Image %s is not in status queued.", im.ID)
	}
	// Book-keeping after the upload must happen even if the client went
	// away, so it runs on a context that is not cancelled with the request.
	bg := context.WithoutCancel(r.Context())
	revert := func() {
		if _, err := s.setStatus(bg, im.ID, "saving", "queued"); err != nil {
			s.log.Error("revert image to queued", "image_id", im.ID, "err", err)
		}
	}
	st := s.cfg.Stores[s.cfg.DefaultStore]
	hr := &hashingReader{r: r.Body, md5: md5.New(), sha512: sha512.New(), max: s.cfg.MaxImageSize}
	stop, beating := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(beating)
		s.beat(bg, im.ID, stop)
	}()
	loc, n, err := st.Put(r.Context(), im.ID, hr)
	close(stop)
	<-beating
	if err == nil && r.ContentLength >= 0 && n != r.ContentLength {
		err = fmt.Errorf("got %d bytes, Content-Length said %d", n, r.ContentLength)
		_ = st.Delete(bg, loc)
	}
	if err != nil {
		revert()
		var tooBig *http.MaxBytesError
		switch {
		case errors.Is(err, errTooLarge), errors.As(err, &tooBig):
			return nil, api.Errorf(http.StatusRequestEntityTooLarge, "Image exceeds the storage quota of %d bytes.", s.cfg.MaxImageSize)
		case errors.Is(err, imagestore.ErrFull):
			return nil, api.Errorf(http.StatusRequestEntityTooLarge, "Image storage media is full.")
		}
		s.log.Warn("image upload failed", "image_id", im.ID, "request_id", api.RequestID(r.Context()), "err", err)
		return nil, api.BadRequest("Image upload failed: the data could not be read completely.")
	}
	sum := hex.EncodeToString(hr.md5.Sum(nil))
	hv := hex.EncodeToString(hr.sha512.Sum(nil))
	res, err = s.db.Exec(bg, `UPDATE images SET status = 'active', size = ?, checksum = ?, os_hash_algo = 'sha512', os_hash_value = ?,
		location_store = ?, location_url = ?, updated_at = ? WHERE id = ? AND status = 'saving'`,
		n, sum, hv, loc.Store, loc.URL, store.FormatTime(time.Now()), im.ID)
	var rows int64
	if err == nil {
		rows, err = res.RowsAffected()
	}
	if err != nil || rows != 1 {
		// The image was deleted while uploading (or the database failed):
		// the data must not outlive it.
		_ = st.Delete(bg, loc)
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
	if (im.Status != "active" && im.Status != "deactivated") || im.Location.URL == "" || im.Size == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	st, ok := s.cfg.Stores[im.Location.Store]
	if !ok {
		return fmt.Errorf("image %s is in unknown store %q", im.ID, im.Location.Store)
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
	rc, err := st.Get(r.Context(), im.Location, offset, length)
	if errors.Is(err, imagestore.ErrNotFound) {
		return api.NotFound("Image data for %s is not available.", im.ID)
	}
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
