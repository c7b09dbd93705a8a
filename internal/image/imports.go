package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/image/imagestore"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// The interoperable image import methods (Glance's import API).
const (
	methodGlanceDirect   = "glance-direct"
	methodWebDownload    = "web-download"
	methodCopyImage      = "copy-image"
	methodGlanceDownload = "glance-download"
)

// importMethods lists the import methods this service can run: all need
// the staging area; web-download needs a URL guard and glance-download a
// way to find other regions' image endpoints.
func (s *Service) importMethods() []string {
	if s.staging == nil {
		return []string{}
	}
	m := []string{methodGlanceDirect}
	if s.cfg.WebDownload != nil {
		m = append(m, methodWebDownload)
	}
	m = append(m, methodCopyImage)
	if s.cfg.Endpoints != nil {
		m = append(m, methodGlanceDownload)
	}
	return m
}

// writableStores are the ids of the stores imports may write to, sorted.
func (s *Service) writableStores() []string {
	var ids []string
	for id, st := range s.cfg.Stores {
		if !st.ReadOnly() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// importRequest is the body of POST /v2/images/{id}/import.
type importRequest struct {
	Method struct {
		Name string `json:"name"`
		// web-download
		URI string `json:"uri,omitempty"`
		// glance-download
		GlanceImageID          string `json:"glance_image_id,omitempty"`
		GlanceRegion           string `json:"glance_region,omitempty"`
		GlanceServiceInterface string `json:"glance_service_interface,omitempty"`
	} `json:"method"`
	Stores               []string `json:"stores,omitempty"`
	AllStores            *bool    `json:"all_stores,omitempty"`
	AllStoresMustSucceed *bool    `json:"all_stores_must_succeed,omitempty"`
}

// importImage is POST /v2/images/{id}/import: it validates the request,
// moves the image to importing, records a task and runs it in the
// background; clients follow the image's status and its tasks.
func (s *Service) importImage(r *http.Request) (*api.Response, error) {
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	var req importRequest
	if err := decodeJSON(r, &req); err != nil {
		return nil, err
	}
	method := req.Method.Name
	if method == "" {
		return nil, api.BadRequest("Import request requires a 'method' with a 'name'.")
	}
	if !slices.Contains(s.importMethods(), method) {
		return nil, api.BadRequest("Import method %s is not valid.", method)
	}
	action := "modify_image"
	if method == methodCopyImage {
		action = "copy_image"
	}
	if err := s.authorize(r, action, im, nil); err != nil {
		return nil, err
	}
	stores, err := s.importStores(r, im, &req)
	if err != nil {
		return nil, err
	}
	if method != methodCopyImage && (im.DiskFormat == nil || im.ContainerFormat == nil) {
		return nil, api.BadRequest("Properties disk_format, container_format must be set prior to importing data.")
	}
	from := "queued"
	switch method {
	case methodGlanceDirect:
		if im.Status != "uploading" || !s.staged(im.ID) {
			return nil, api.Conflict("Image needs to be staged before 'glance-direct' method can be used")
		}
		from = "uploading"
	case methodWebDownload:
		if err := s.checkWebDownload(r.Context(), req.Method.URI); err != nil {
			return nil, err
		}
	case methodGlanceDownload:
		if _, err := uuid.Parse(req.Method.GlanceImageID); err != nil {
			return nil, api.BadRequest("Remote image id does not look like a UUID: %q", req.Method.GlanceImageID)
		}
	case methodCopyImage:
		if im.Status != "active" {
			return nil, api.Conflict("Image %s is not active; only active images can be copied (status %s).", im.ID, im.Status)
		}
		from = "active"
	}
	if im.Status != from {
		return nil, api.Conflict("Image status transition from %s to importing is not allowed", im.Status)
	}
	if req.AllStoresMustSucceed == nil {
		t := true
		req.AllStoresMustSucceed = &t
	}
	t, err := s.startImport(r, im, from, method, stores, req)
	if err != nil {
		return nil, err
	}
	s.log.Info("image import started", "image_id", im.ID, "task_id", t.ID, "method", method, "stores", stores)
	return &api.Response{Status: http.StatusAccepted}, nil
}

// importStores resolves the stores an import writes to: the listed ones,
// all writable ones (skipping those that already hold a copy for
// copy-image), or the one in X-Image-Meta-Store or the default.
func (s *Service) importStores(r *http.Request, im *image, req *importRequest) ([]string, error) {
	all := req.AllStores != nil && *req.AllStores
	if all && len(req.Stores) > 0 {
		return nil, api.BadRequest("All stores and stores params are mutually exclusive.")
	}
	var stores []string
	switch {
	case all:
		stores = s.writableStores()
	case len(req.Stores) > 0:
		for _, id := range req.Stores {
			st, ok := s.cfg.Stores[id]
			if !ok {
				return nil, api.BadRequest("Unknown store %s.", id)
			}
			if st.ReadOnly() {
				return nil, api.BadRequest("Store %s is read-only.", id)
			}
			if !slices.Contains(stores, id) {
				stores = append(stores, id)
			}
		}
	default:
		st, err := s.targetStore(r)
		if err != nil {
			return nil, err
		}
		stores = []string{st.ID()}
	}
	if req.Method.Name == methodCopyImage {
		var missing []string
		for _, id := range stores {
			if hasStore(im, id) {
				if !all {
					return nil, api.Conflict("Image %s already exists in store %s.", im.ID, id)
				}
				continue
			}
			missing = append(missing, id)
		}
		stores = missing
	}
	return stores, nil
}

// checkWebDownload refuses a web-download URI that is malformed or points
// where the guard forbids. A name that does not resolve is not refused
// here: the import fails later and says so in os_glance_failed_import,
// as Glance does.
func (s *Service) checkWebDownload(ctx context.Context, uri string) error {
	if uri == "" {
		return api.BadRequest("The web-download method requires a 'uri'.")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.cfg.WebDownload.Check(ctx, uri); errors.Is(err, imagestore.ErrForbiddenTarget) {
		return api.BadRequest("URI for web-download does not pass filtering: %v", err)
	}
	return nil
}

// importJob is one import as the background runner sees it.
type importJob struct {
	task    *task
	imageID string
	owner   string
	token   string // the caller's token, for glance-download
	from    string // the status the image returns to on failure
	method  string
	stores  []string
	mustAll bool
	req     importRequest
	diskFmt string
	convTo  string
}

// startImport moves the image to importing (copy-image leaves it
// active), records the task and starts it.
func (s *Service) startImport(r *http.Request, im *image, from, method string, stores []string, req importRequest) (*task, error) {
	ctx := r.Context()
	caller := api.Caller(r)
	input := map[string]any{"image_id": im.ID, "import_req": req, "backend": stores}
	t := newTask(im, "api_image_import", caller.UserID, api.RequestID(ctx), input)
	to := "importing"
	if method == methodCopyImage {
		to = "active"
	}
	var ok bool
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE images SET status = ?, importing_stores = ?, failed_import = '', upload_heartbeat = ?, updated_at = ?
			WHERE id = ? AND status = ?`, to, strings.Join(stores, ","), store.FormatTime(time.Now()), store.FormatTime(time.Now()), im.ID, from)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		ok = true
		return insertTask(ctx, tx, t)
	})
	if err != nil {
		return nil, fmt.Errorf("start import of %s: %w", im.ID, err)
	}
	if !ok {
		return nil, api.Conflict("Image %s changed status concurrently.", im.ID)
	}
	job := &importJob{task: t, imageID: im.ID, owner: im.Owner, token: caller.Token, from: from, method: method,
		stores: stores, mustAll: *req.AllStoresMustSucceed, req: req}
	if im.DiskFormat != nil {
		job.diskFmt = *im.DiskFormat
	}
	s.jobs.Add(1)
	go func() {
		defer s.jobs.Done()
		s.runImport(s.ctx, job)
	}()
	return t, nil
}

// runImport carries an import out: fetch the data into staging (except
// glance-direct, whose data is there), convert it if the operator asked,
// then write it to each target store. The image turns active once the
// stores hold it; on failure it returns to where it was and the stores
// keep nothing of this import.
func (s *Service) runImport(ctx context.Context, job *importJob) {
	// Book-keeping must happen even when Close cancels ctx mid-import.
	book := context.WithoutCancel(ctx)
	stop := s.keepAlive(book, `UPDATE image_tasks SET heartbeat = ? WHERE id = ?`, job.task.ID)
	defer stop()
	s.setTaskStatus(book, job.task.ID, "processing", "")
	err := s.fetchToStaging(ctx, job)
	if err == nil {
		err = s.convertStaged(ctx, job)
	}
	var failed []string
	var stored []location
	var in ingested
	if err == nil {
		in, stored, failed, err = s.writeStores(ctx, job)
	}
	if err == nil && len(failed) > 0 && job.mustAll {
		err = fmt.Errorf("import to stores %s failed", strings.Join(failed, ","))
	}
	if err == nil {
		err = s.finishImport(book, job, in, stored, failed)
	}
	if err != nil {
		s.deleteData(book, job.imageID, stored)
		s.failImport(book, job, failed, err)
		return
	}
	s.discardStaged(book, job.imageID)
	s.setTaskStatus(book, job.task.ID, "success", "")
	s.log.Info("image import finished", "image_id", job.imageID, "task_id", job.task.ID, "stores", job.stores, "failed", failed)
}

// fetchToStaging brings the data of web-download, glance-download and
// copy-image into the staging area.
func (s *Service) fetchToStaging(ctx context.Context, job *importJob) error {
	var (
		src io.ReadCloser
		err error
	)
	switch job.method {
	case methodGlanceDirect:
		if !s.staged(job.imageID) {
			return errors.New("the staged data is gone")
		}
		return nil
	case methodWebDownload:
		src, err = s.webDownload(ctx, job.req.Method.URI)
	case methodGlanceDownload:
		src, err = s.glanceDownload(ctx, job)
	case methodCopyImage:
		var im *image
		if im, err = s.getImage(ctx, job.imageID); err == nil {
			src, err = s.openData(ctx, im, 0, -1)
		}
	default:
		err = fmt.Errorf("unknown import method %q", job.method)
	}
	if err != nil {
		return err
	}
	defer src.Close()
	limit := s.cfg.MaxImageSize
	if job.method != methodCopyImage {
		if limit, err = s.stagingAllowance(ctx, job.owner, -1); err != nil {
			return err
		}
	}
	_, err = s.stage(ctx, job.imageID, src, limit)
	return err
}

// webDownload opens uri through the SSRF guard's client, which checks
// every address it connects to and every redirect.
func (s *Service) webDownload(ctx context.Context, uri string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("web-download %s: %w", redactURL(uri), err)
	}
	resp, err := s.webClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("web-download: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("web-download %s: HTTP %s", redactURL(uri), resp.Status)
	}
	return resp.Body, nil
}

// writeStores writes the staged data to each target store in turn. The
// first copy's digests are the image's; later copies must match them.
func (s *Service) writeStores(ctx context.Context, job *importJob) (in ingested, stored []location, failed []string, err error) {
	var want *ingested
	if job.method == methodCopyImage {
		im, err := s.getImage(ctx, job.imageID)
		if err != nil {
			return in, nil, nil, err
		}
		if im.Checksum != nil && im.Size != nil {
			want = &ingested{size: *im.Size, checksum: *im.Checksum}
		}
	}
	for i, id := range job.stores {
		got, err := s.writeStore(ctx, job, id)
		if err == nil && want != nil && (got.checksum != want.checksum || got.size != want.size) {
			err = fmt.Errorf("copy in %s has checksum %s, size %d; expected %s, %d", id, got.checksum, got.size, want.checksum, want.size)
			s.deleteData(ctx, job.imageID, []location{{Location: got.loc}})
		}
		if err != nil {
			s.log.Warn("image import to store failed", "image_id", job.imageID, "store", id, "err", err)
			failed = append(failed, id)
		} else {
			stored = append(stored, location{Location: got.loc})
			if want == nil {
				in, want = got, &got
			}
		}
		// The last store's outcome is published by finishImport or
		// failImport, in the same write as the locations: an empty
		// os_glance_importing_to_stores must mean the copies are listed.
		if i == len(job.stores)-1 {
			break
		}
		if err := s.setImportProgress(context.WithoutCancel(ctx), job.imageID, job.stores, stored, failed); err != nil {
			return in, stored, failed, err
		}
	}
	if len(stored) == 0 && len(job.stores) > 0 {
		return in, nil, failed, errors.New("no store took the image data")
	}
	return in, stored, failed, nil
}

func (s *Service) writeStore(ctx context.Context, job *importJob, id string) (ingested, error) {
	src, err := s.openStaged(ctx, job.imageID)
	if err != nil {
		return ingested{}, err
	}
	defer src.Close()
	format := job.diskFmt
	if job.convTo != "" {
		format = job.convTo
	}
	return s.ingest(ctx, s.cfg.Stores[id], job.imageID, src, s.cfg.MaxImageSize, -1, format)
}

// setImportProgress publishes which stores are left and which failed,
// as os_glance_importing_to_stores and os_glance_failed_import.
func (s *Service) setImportProgress(ctx context.Context, imageID string, stores []string, stored []location, failed []string) error {
	var left []string
	for _, id := range stores {
		done := slices.Contains(failed, id) || slices.ContainsFunc(stored, func(l location) bool { return l.Store == id })
		if !done {
			left = append(left, id)
		}
	}
	_, err := s.db.Exec(ctx, `UPDATE images SET importing_stores = ?, failed_import = ? WHERE id = ?`,
		strings.Join(left, ","), strings.Join(failed, ","), imageID)
	return err
}

// finishImport records the new copies: a new image turns active with its
// size and digests; copy-image only adds locations.
func (s *Service) finishImport(ctx context.Context, job *importJob, in ingested, stored []location, failed []string) error {
	if job.method == methodCopyImage {
		return s.db.InTx(ctx, func(tx *store.Tx) error {
			for _, l := range stored {
				if err := addLocation(ctx, tx, job.imageID, l); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, `UPDATE images SET importing_stores = '', failed_import = ?, updated_at = ? WHERE id = ?`,
				strings.Join(failed, ","), store.FormatTime(time.Now()), job.imageID)
			return err
		})
	}
	var disk *string
	if job.convTo != "" {
		disk = &job.convTo
	}
	ok, err := s.activate(ctx, job.imageID, "importing", in, disk, stored)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("the image was deleted or changed during the import")
	}
	// The image is active; now publish the last store's outcome.
	return s.setImportProgress(ctx, job.imageID, nil, stored, failed)
}

// failImport returns the image to where the import found it and records
// why on the task.
func (s *Service) failImport(ctx context.Context, job *importJob, failed []string, cause error) {
	s.log.Warn("image import failed", "image_id", job.imageID, "task_id", job.task.ID, "method", job.method, "err", cause)
	if len(failed) == 0 {
		failed = job.stores
	}
	back := job.from
	if back == "uploading" && !s.staged(job.imageID) {
		back = "queued"
	}
	if back == "queued" {
		s.discardStaged(ctx, job.imageID)
	}
	status := "importing"
	if job.method == methodCopyImage {
		status = "active"
	}
	if _, err := s.db.Exec(ctx, `UPDATE images SET status = ?, importing_stores = '', failed_import = ?, updated_at = ? WHERE id = ? AND status = ?`,
		back, strings.Join(failed, ","), store.FormatTime(time.Now()), job.imageID, status); err != nil {
		s.log.Error("revert failed import", "image_id", job.imageID, "err", err)
	}
	s.setTaskStatus(ctx, job.task.ID, "failure", cause.Error())
}

// redactURL drops credentials and the query from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}
