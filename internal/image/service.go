// Package image is Nimbus's image service, compatible with the OpenStack
// Glance v2 API: image records, their data in pluggable stores
// (imagestore), sharing through members, tags and the JSON schemas that
// clients read.
package image

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/image/imagestore"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// DefaultMaxImageSize is Glance's default image_size_cap: 1 TiB.
const DefaultMaxImageSize = 1 << 40

// DefaultCacheMaxSize is Glance's default image_cache_max_size: 10 GiB.
const DefaultCacheMaxSize = 10 << 30

// Config configures the image service.
type Config struct {
	// PublicURL is the service's public base URL (e.g. http://host:9292),
	// used in version documents; derived from the request when empty.
	PublicURL string
	// Stores are the stores image data may live in, by id.
	Stores map[string]imagestore.Store
	// DefaultStore is the id of the store uploads go to.
	DefaultStore string
	// Descriptions are the operator's descriptions of stores, by id,
	// shown in /v2/info/stores instead of the stores' own.
	Descriptions map[string]string
	// MaxImageSize caps one image's data (Glance's image_size_cap);
	// DefaultMaxImageSize when 0.
	MaxImageSize int64
	// StagingDir holds data uploaded for the glance-direct import
	// (PUT /v2/images/{id}/stage) until it is imported. Required.
	StagingDir string
	// WebDownload decides which URLs web-download imports may fetch
	// (loopback, link-local, metadata and private addresses are refused
	// unless the operator allows them) and fetches through its Client;
	// nil disables the web-download method.
	WebDownload *imagestore.SSRFGuard
	// Endpoints finds the image API of another region for glance-download
	// imports (the identity catalog's image endpoint of that region and
	// interface); nil disables the glance-download method.
	Endpoints func(ctx context.Context, region, iface string) (string, error)
	// Quota bounds each project's images; zero fields are unlimited.
	Quota Quota
	// ConvertTo, when set ("raw" or "qcow2"), makes imports convert
	// image data to that disk format with qemu-img.
	ConvertTo string
	// RequireFormatMatch refuses image data that is not in its declared
	// disk format (Glance's [image_format] require_image_format_match).
	// Data that would make a hypervisor read other files is refused
	// whatever this says.
	RequireFormatMatch bool
	// CacheDir, when set, keeps whole copies of downloaded (or queued)
	// images on this node, up to CacheMaxSize bytes, and serves the
	// /v2/cache API (Glance's image cache).
	CacheDir     string
	CacheMaxSize int64
	// CachePrefetchInterval is how often queued images are fetched into
	// the cache (Glance's cache_prefetcher_interval; 30 s when 0).
	CachePrefetchInterval time.Duration
	// ShowMultipleLocations exposes the locations API and the
	// "locations" attribute (Glance's show_multiple_locations).
	ShowMultipleLocations bool
}

// Quota is a per-project limit on images, as Glance's unified-limits
// resources image_count_total, image_size_total (bytes here, MiB on the
// wire), image_stage_total and image_count_uploading. Zero is unlimited.
type Quota struct {
	Images    int64
	Bytes     int64
	Staging   int64
	Uploading int64
}

// Service serves the image API.
type Service struct {
	cfg Config
	db  *store.DB
	api *api.Service
	log *slog.Logger

	// staging holds data on its way into the stores (nil: no import API).
	staging *imagestore.Filesystem
	// cache holds this node's copies of image data (nil: no cache).
	cache *cache
	// webClient fetches web-download URLs through the SSRF guard;
	// peerClient talks to other regions' image services.
	webClient, peerClient *http.Client
	// ctx ends background imports on Close; jobs tracks them.
	ctx    context.Context
	cancel context.CancelFunc
	jobs   sync.WaitGroup
}

// New migrates the image schema and returns the service. Because image
// uploads stream through the shared middleware, New raises svc's body
// limit to MaxImageSize when svc has none of its own; JSON bodies are
// still bounded to api.DefaultMaxBodyBytes by the handlers that read them.
func New(ctx context.Context, cfg Config, db *store.DB, svc *api.Service, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.MaxImageSize == 0 {
		cfg.MaxImageSize = DefaultMaxImageSize
	}
	if len(cfg.Stores) == 0 {
		return nil, errors.New("image service: no stores configured")
	}
	if cfg.DefaultStore == "" && len(cfg.Stores) == 1 {
		for id := range cfg.Stores {
			cfg.DefaultStore = id
		}
	}
	st, ok := cfg.Stores[cfg.DefaultStore]
	if !ok {
		return nil, fmt.Errorf("image service: default store %q is not configured", cfg.DefaultStore)
	}
	if st.ReadOnly() {
		return nil, fmt.Errorf("image service: default store %q is read-only", cfg.DefaultStore)
	}
	if svc.MaxBodyBytes == 0 {
		svc.MaxBodyBytes = cfg.MaxImageSize
	}
	if err := db.Migrate(ctx, "image", schema()); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, db: db, api: svc, log: log,
		peerClient: &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: time.Minute}}}
	if cfg.StagingDir != "" {
		st, err := imagestore.NewFilesystem("staging", cfg.StagingDir)
		if err != nil {
			return nil, fmt.Errorf("image service: staging area: %w", err)
		}
		s.staging = st
	}
	if cfg.WebDownload != nil {
		s.webClient = cfg.WebDownload.Client()
	}
	if cfg.CacheDir != "" {
		if cfg.CacheMaxSize <= 0 {
			cfg.CacheMaxSize = DefaultCacheMaxSize
		}
		c, err := newCache(cfg.CacheDir, cfg.CacheMaxSize)
		if err != nil {
			return nil, err
		}
		s.cache = c
	}
	if err := s.requeueStaleUploads(ctx); err != nil {
		return nil, err
	}
	if err := s.recoverImports(ctx); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if s.cache != nil {
		interval := cfg.CachePrefetchInterval
		if interval <= 0 {
			interval = 30 * time.Second
		}
		s.jobs.Add(1)
		go s.prefetcher(interval)
	}
	return s, nil
}

// Close stops background imports (they fail and revert, as after a
// crash) and waits for them.
func (s *Service) Close() {
	s.cancel()
	s.jobs.Wait()
}

// uploadHeartbeat is how often an upload in progress says it is alive;
// an image in saving whose heartbeat is three beats old was being
// uploaded by a process that died, and goes back to queued.
const uploadHeartbeat = 30 * time.Second

// requeueStaleUploads reconciles on start: uploads that a crash cut short
// left their images in saving, which would refuse any new upload. Uploads
// of other live processes sharing the database keep beating and are left
// alone. (The stores clean up the partial data themselves.)
func (s *Service) requeueStaleUploads(ctx context.Context) error {
	cutoff := store.FormatTime(time.Now().Add(-3 * uploadHeartbeat))
	res, err := s.db.Exec(ctx, `UPDATE images SET status = 'queued' WHERE status = 'saving' AND upload_heartbeat < ?`, cutoff)
	if err != nil {
		return fmt.Errorf("requeue interrupted uploads: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		s.log.Warn("requeued images whose upload was interrupted", "count", n)
	}
	return nil
}

// keepAlive runs query (with the current time and id as arguments)
// every uploadHeartbeat until the returned stop is called, so that a
// long upload or import is known to be alive; one that stops beating
// belonged to a process that died. stop waits for the beating to end.
func (s *Service) keepAlive(ctx context.Context, query, id string) (stop func()) {
	touch := func() {
		if _, err := s.db.Exec(ctx, query, store.FormatTime(time.Now()), id); err != nil {
			s.log.Warn("heartbeat", "id", id, "err", err)
		}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(uploadHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				touch()
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// Glance's accepted formats (its default disk_formats and
// container_formats options).
var (
	diskFormats      = []string{"ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"}
	containerFormats = []string{"ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"}
	visibilities     = []string{"public", "private", "shared", "community"}
)

// image is one image record.
type image struct {
	ID              string
	Name            *string
	Status          string
	Visibility      string
	Owner           string
	Protected       bool
	Hidden          bool
	DiskFormat      *string
	ContainerFormat *string
	MinDisk         int64
	MinRAM          int64
	Size            *int64
	VirtualSize     *int64
	Checksum        *string
	HashAlgo        *string
	HashValue       *string
	Properties      map[string]any
	Tags            []string
	// Locations are the copies of the image's data, in order; the first
	// one readable is served. Loaded by getImage and list pages.
	Locations []location
	// ImportingStores and FailedImport are Glance's
	// os_glance_importing_to_stores and os_glance_failed_import: the
	// stores an import still has to fill and those it failed, comma
	// separated; nil when no import ever ran. They live in columns of
	// their own so that the import task and a user's PATCH never
	// overwrite each other's changes.
	ImportingStores *string
	FailedImport    *string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

const imageColumns = `id, name, status, visibility, owner, protected, os_hidden, disk_format, container_format,
	min_disk, min_ram, size, virtual_size, checksum, os_hash_algo, os_hash_value, properties, tags,
	created_at, updated_at, importing_stores, failed_import`

func scanImage(row store.Scanner) (*image, error) {
	var (
		im                                      image
		name, disk, container, sum, algo, hashv sql.NullString
		importing, failed                       sql.NullString
		size, vsize                             sql.NullInt64
		props, tags, created, updated           string
		protected, hidden                       int
	)
	if err := row.Scan(&im.ID, &name, &im.Status, &im.Visibility, &im.Owner, &protected, &hidden, &disk, &container,
		&im.MinDisk, &im.MinRAM, &size, &vsize, &sum, &algo, &hashv, &props, &tags,
		&created, &updated, &importing, &failed); err != nil {
		return nil, err
	}
	str := func(n sql.NullString) *string {
		if !n.Valid {
			return nil
		}
		return &n.String
	}
	num := func(n sql.NullInt64) *int64 {
		if !n.Valid {
			return nil
		}
		return &n.Int64
	}
	im.Name, im.DiskFormat, im.ContainerFormat = str(name), str(disk), str(container)
	im.Checksum, im.HashAlgo, im.HashValue = str(sum), str(algo), str(hashv)
	im.Size, im.VirtualSize = num(size), num(vsize)
	im.ImportingStores, im.FailedImport = str(importing), str(failed)
	im.Protected, im.Hidden = protected != 0, hidden != 0
	if err := json.Unmarshal([]byte(props), &im.Properties); err != nil {
		return nil, fmt.Errorf("image %s properties: %w", im.ID, err)
	}
	if err := json.Unmarshal([]byte(tags), &im.Tags); err != nil {
		return nil, fmt.Errorf("image %s tags: %w", im.ID, err)
	}
	im.CreatedAt, _ = store.ParseTime(created)
	im.UpdatedAt, _ = store.ParseTime(updated)
	return &im, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// insert writes a new image record.
func (s *Service) insert(ctx context.Context, im *image) error {
	_, err := s.db.Exec(ctx, `INSERT INTO images (`+imageColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		im.ID, im.Name, im.Status, im.Visibility, im.Owner, boolInt(im.Protected), boolInt(im.Hidden), im.DiskFormat, im.ContainerFormat,
		im.MinDisk, im.MinRAM, im.Size, im.VirtualSize, im.Checksum, im.HashAlgo, im.HashValue, jsonText(im.Properties), jsonText(im.Tags),
		store.FormatTime(im.CreatedAt), store.FormatTime(im.UpdatedAt), im.ImportingStores, im.FailedImport)
	if store.IsConflict(err) {
		return api.Conflict("Image with identifier %s already exists!", im.ID)
	}
	return err
}

// update rewrites the mutable metadata of im (not its status or data).
func (s *Service) update(ctx context.Context, im *image) error {
	return updateIn(ctx, s.db, im)
}

// updateIn is update within a transaction (or any Querier).
func updateIn(ctx context.Context, q store.Querier, im *image) error {
	im.UpdatedAt = time.Now().UTC()
	_, err := q.Exec(ctx, `UPDATE images SET name = ?, visibility = ?, owner = ?, protected = ?, os_hidden = ?, disk_format = ?,
		container_format = ?, min_disk = ?, min_ram = ?, properties = ?, tags = ?, updated_at = ? WHERE id = ?`,
		im.Name, im.Visibility, im.Owner, boolInt(im.Protected), boolInt(im.Hidden), im.DiskFormat, im.ContainerFormat,
		im.MinDisk, im.MinRAM, jsonText(im.Properties), jsonText(im.Tags), store.FormatTime(im.UpdatedAt), im.ID)
	return err
}

// setStatus moves an image from one status to another; it reports false
// when the image was not in status from (a concurrent change won).
func (s *Service) setStatus(ctx context.Context, id, from, to string) (bool, error) {
	res, err := s.db.Exec(ctx, `UPDATE images SET status = ?, updated_at = ? WHERE id = ? AND status = ?`,
		to, store.FormatTime(time.Now()), id, from)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *Service) getImage(ctx context.Context, id string) (*image, error) {
	im, err := store.QueryOne(ctx, s.db, scanImage, `SELECT `+imageColumns+` FROM images WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if err := s.loadLocations(ctx, im); err != nil {
		return nil, err
	}
	return im, nil
}

// isAdmin reports whether the caller is a cloud admin (Glance's
// context_is_admin rule).
func (s *Service) isAdmin(r *http.Request) bool {
	caller := api.Caller(r)
	if caller == nil {
		return false
	}
	if s.api.Policy == nil {
		return caller.HasRole("admin")
	}
	ok, err := s.api.Policy.Allow("context_is_admin", map[string]any{}, caller)
	return err == nil && ok
}

func projectOf(r *http.Request) string {
	if c := api.Caller(r); c != nil {
		return c.ProjectID
	}
	return ""
}

// memberStatus returns the caller project's membership status of an
// image, or "" when it is not a member.
func (s *Service) memberStatus(ctx context.Context, imageID, project string) (string, error) {
	if project == "" {
		return "", nil
	}
	st, err := store.QueryOne(ctx, s.db, func(row store.Scanner) (string, error) {
		var v string
		err := row.Scan(&v)
		return v, err
	}, `SELECT status FROM image_members WHERE image_id = ? AND member_id = ?`, imageID, project)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	return st, err
}

// canSee applies Glance's visibility rules for showing one image: admins
// and owners see everything, public and community images are seen by
// all, shared images by their members whatever their status.
func (s *Service) canSee(r *http.Request, im *image) (bool, error) {
	if s.isAdmin(r) || im.Owner == projectOf(r) {
		return true, nil
	}
	switch im.Visibility {
	case "public", "community":
		return true, nil
	case "shared":
		st, err := s.memberStatus(r.Context(), im.ID, projectOf(r))
		return st != "", err
	}
	return false, nil
}

// loadImage fetches the image named by the {image_id} path value that the
// caller may see; anything else is a 404, so that the existence of other
// projects' private images is not revealed.
func (s *Service) loadImage(r *http.Request) (*image, error) {
	id := r.PathValue("image_id")
	notFound := api.NotFound("No image found with ID %s", id)
	u, err := uuid.Parse(id)
	if err != nil {
		return nil, notFound
	}
	im, err := s.getImage(r.Context(), u.String())
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	ok, err := s.canSee(r, im)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound
	}
	return im, nil
}

// authorize enforces a policy action against an image.
func (s *Service) authorize(r *http.Request, action string, im *image, extra map[string]any) error {
	target := map[string]any{"owner": im.Owner, "project_id": im.Owner, "visibility": im.Visibility, "image_id": im.ID}
	for k, v := range extra {
		target[k] = v
	}
	return s.api.Authorize(r, action, target)
}

// decodeJSON decodes a JSON request body bounded to the ordinary API body
// limit; the service-wide limit is raised for uploads only.
func decodeJSON(r *http.Request, v any) error {
	if r.ContentLength > api.DefaultMaxBodyBytes {
		return api.Errorf(http.StatusRequestEntityTooLarge, "Request is too large.")
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(nil, r.Body, api.DefaultMaxBodyBytes)
	}
	return api.DecodeJSONLoose(r, v)
}

func (s *Service) baseURL(r *http.Request) string {
	return api.BaseURL(r, s.cfg.PublicURL)
}

// Errors renders error bodies as Glance does for clients that accept
// JSON (webob's JSON error page):
// {"code": "404 Not Found", "title": "Not Found", "message": "..."}.
// openstacksdk asks for JSON and shows "message".
func Errors(e *api.Error, _ string) (string, []byte) {
	b, err := json.Marshal(map[string]any{
		"code":    fmt.Sprintf("%d %s", e.Status, e.Title()),
		"title":   e.Title(),
		"message": e.Message,
	})
	if err != nil {
		b = []byte(`{}`)
	}
	return "application/json", b
}

// PlainErrors renders webob's plain-text error page, what Glance sends
// clients that do not ask for JSON: glanceclient, for one, parses JSON
// errors only in a shape Glance never sends, and shows this text as is.
func PlainErrors(e *api.Error, _ string) (string, []byte) {
	return "text/plain; charset=UTF-8", fmt.Appendf(nil, "%d %s\n\n%s\n\n", e.Status, e.Title(), e.Message)
}

// ErrorsFor picks the error format by the request's Accept header.
func ErrorsFor(r *http.Request) api.ErrorFormat {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		return Errors
	}
	return PlainErrors
}
