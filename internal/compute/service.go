package compute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Scheduler strategies (Config.Scheduler).
const (
	StrategyLeastLoaded = "least-loaded"
	StrategyRandom      = "random"
	StrategyAZ          = "availability-zone"
)

// Config configures the compute service.
type Config struct {
	// PublicURL is the service's public base URL (http://host:8774), used
	// in version documents and links; derived from the request when empty.
	PublicURL string
	// Bus carries commands to agents and their reports back. Required for
	// Start; the API answers without it but cannot build anything.
	Bus *bus.Bus
	// Images looks images up and creates snapshot images in the image
	// service with the caller's token; when nil, image references are
	// accepted unchecked (single-service tests).
	Images ImageService
	// Networks checks requested networks and ports; when nil they are
	// accepted unchecked.
	Networks NetworkService
	// ImageURL and NetworkURL are the image and networking services'
	// base URLs (http://host:9292, http://host:9696). They back the
	// deprecated proxy APIs (/images, /os-security-groups,
	// /os-floating-ips, before 2.36) and, when Images or Networks is
	// nil, the lookups above through ImageClient and NetworkClient.
	ImageURL   string
	NetworkURL string
	// Volumes is the block storage service (volume attachments, boot
	// from volume); when nil and VolumeURL is set, a VolumeClient for
	// VolumeURL that calls as the compute service user with
	// VolumeServiceToken. Without either, volume requests answer 501 and
	// servers cannot have volumes.
	Volumes            VolumeService
	VolumeURL          string
	VolumeServiceToken func(ctx context.Context, renew bool) (string, error)
	// VolumeCreateTimeout bounds how long a build waits for the volumes
	// it asked for (image→volume, blank→volume); 5 minutes when 0.
	VolumeCreateTimeout time.Duration
	// DefaultAvailabilityZone is the zone of hosts that report none and
	// of servers that ask for none: "nova" when empty, as Nova.
	DefaultAvailabilityZone string
	// Scheduler is the host selection strategy: least-loaded (default),
	// random or availability-zone.
	Scheduler string
	// CPUAllocationRatio, RAMAllocationRatio and DiskAllocationRatio apply
	// to hosts that do not report their own; Nova's initial defaults
	// (4.0, 1.0, 1.0) when 0.
	CPUAllocationRatio  float64
	RAMAllocationRatio  float64
	DiskAllocationRatio float64
	// MaxAttempts bounds how many hosts one build is tried on; 3 when 0.
	MaxAttempts int
	// ServiceDownTime is how long after its last heartbeat a host counts
	// as down; 60s when 0, as Nova's service_down_time.
	ServiceDownTime time.Duration
	// BuildTimeout bounds how long a server may stay in a transitional
	// state without word from its agent before the reconcile loop puts it
	// in ERROR (or finishes its delete); 10 minutes when 0.
	BuildTimeout time.Duration
	// VolumeAttachTimeout is how long an attach or detach of a volume
	// may wait for its agent's report before the reconcile loop settles
	// it from the host's sync (volume_watchdog.go); 5 minutes when 0.
	VolumeAttachTimeout time.Duration
	// ReconcileInterval is how often the reconcile loop runs; 10s when 0.
	ReconcileInterval time.Duration
	// Quotas overrides the default per-project limits by Nova resource
	// name (instances, cores, ram, key_pairs, server_groups, ...).
	Quotas map[string]int
	// ConsoleProxyURL is the base URL of the noVNC proxy
	// (http://host:6080/vnc_auto.html); remote console requests are 400
	// when empty. SerialProxyURL is the same for serial consoles.
	ConsoleProxyURL string
	SerialProxyURL  string
	// DefaultFlavors, when true, creates Nova's classic flavors (m1.tiny
	// = 1 ... m1.xlarge = 5) and devstack's m1.nano = 42 and m1.micro =
	// 84 the first time the schema is created.
	DefaultFlavors bool
}

// ImageInfo is what the compute API needs to know about an image.
type ImageInfo struct {
	ID         string
	Name       string
	Status     string
	MinDiskGB  int
	MinRAMMB   int
	SizeBytes  int64
	Properties map[string]string
}

// ImageService is the image service as the compute API uses it. token is
// the caller's, so visibility is the image service's to decide.
type ImageService interface {
	// Image returns the image, or ErrNotFound.
	Image(ctx context.Context, token, id string) (*ImageInfo, error)
	// CreateSnapshot registers a queued image that an agent will upload
	// and returns its id.
	CreateSnapshot(ctx context.Context, token, name string, props map[string]string) (string, error)
}

// NetworkService is the networking service as the compute API uses it.
type NetworkService interface {
	// NetworkExists reports whether the caller can use network id.
	NetworkExists(ctx context.Context, token, id string) (bool, error)
	// PortUsable reports whether port id exists and is free for a server.
	PortUsable(ctx context.Context, token, id string) (exists, inUse bool, err error)
}

// ErrNotFound is what ImageService and NetworkService answer for a
// missing resource.
var ErrNotFound = errors.New("not found")

// Service serves the compute API and schedules servers onto hosts.
type Service struct {
	cfg Config
	db  *store.DB
	api *api.Service
	log *slog.Logger
	mv  api.Microversions

	mu      sync.Mutex
	subs    []*bus.Subscription // guarded by mu
	stop    context.CancelFunc  // guarded by mu; ends the reconcile loop
	stopped chan struct{}       // guarded by mu
	// reports feeds the report writer while the service runs, and
	// reportsDone is closed when it has stopped; guarded by mu.
	reports     chan queuedReport
	reportsDone chan struct{}

	// proxy calls the image and networking services for the proxy APIs.
	proxy *http.Client

	// settling holds the volume mappings (by id) whose calls to the
	// volume service a goroutine of this process is making, true when
	// another asked for it meanwhile; prepares the servers whose volumes
	// are being readied for their build. Guarded by mu.
	settling map[string]bool
	prepares map[string]bool
	// bgCtx ends, and bg is waited for, when the service closes: it
	// carries the volume preparation of builds. Guarded by mu.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
}

// MinVersion and MaxVersion are the microversions this service speaks.
var (
	MinVersion = api.Version{Major: 2, Minor: 1}
	MaxVersion = api.Version{Major: 2, Minor: 79}
)

// New migrates the compute schema and returns the service. Start connects
// it to the agents.
func New(ctx context.Context, cfg Config, db *store.DB, svc *api.Service, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.DefaultAvailabilityZone == "" {
		cfg.DefaultAvailabilityZone = "nova"
	}
	switch cfg.Scheduler {
	case "":
		cfg.Scheduler = StrategyLeastLoaded
	case StrategyLeastLoaded, StrategyRandom, StrategyAZ:
	default:
		return nil, fmt.Errorf("compute service: scheduler %q is not one of least-loaded, random, availability-zone", cfg.Scheduler)
	}
	if cfg.CPUAllocationRatio <= 0 {
		cfg.CPUAllocationRatio = 4.0
	}
	if cfg.RAMAllocationRatio <= 0 {
		cfg.RAMAllocationRatio = 1.0
	}
	if cfg.DiskAllocationRatio <= 0 {
		cfg.DiskAllocationRatio = 1.0
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.ServiceDownTime <= 0 {
		cfg.ServiceDownTime = 60 * time.Second
	}
	if cfg.BuildTimeout <= 0 {
		cfg.BuildTimeout = 10 * time.Minute
	}
	if cfg.VolumeAttachTimeout <= 0 {
		cfg.VolumeAttachTimeout = defaultVolumeAttachTimeout
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = 10 * time.Second
	}
	for res := range cfg.Quotas {
		if _, ok := defaultQuotas[res]; !ok {
			return nil, fmt.Errorf("compute service: unknown quota resource %q", res)
		}
	}
	if svc.Errors == nil {
		svc.Errors = api.NovaErrors
	}
	cfg.ImageURL = strings.TrimSuffix(cfg.ImageURL, "/")
	cfg.NetworkURL = strings.TrimSuffix(cfg.NetworkURL, "/")
	if cfg.Images == nil && cfg.ImageURL != "" {
		cfg.Images = NewImageClient(cfg.ImageURL)
	}
	if cfg.Networks == nil && cfg.NetworkURL != "" {
		cfg.Networks = NewNetworkClient(cfg.NetworkURL)
	}
	if cfg.Volumes == nil && cfg.VolumeURL != "" {
		cfg.Volumes = NewVolumeClient(cfg.VolumeURL, cfg.VolumeServiceToken)
	}
	if cfg.VolumeCreateTimeout <= 0 {
		cfg.VolumeCreateTimeout = 5 * time.Minute
	}
	// An empty migration list only creates the bookkeeping table, so the
	// version can be read before the schema exists.
	if err := db.Migrate(ctx, "compute", nil); err != nil {
		return nil, err
	}
	fresh, err := db.SchemaVersion(ctx, "compute")
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, "compute", schema()); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, db: db, api: svc, log: log, proxy: &http.Client{Timeout: 30 * time.Second}, mv: api.Microversions{
		ServiceType: "compute", LegacyHeader: "X-OpenStack-Nova-API-Version", Min: MinVersion, Max: MaxVersion,
	}}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	if fresh > 0 && fresh < 4 {
		if err := s.rezoneAll(ctx); err != nil {
			return nil, err
		}
	}
	if fresh == 0 && cfg.DefaultFlavors {
		if err := s.seedFlavors(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Handler returns the compute API with its middleware.
func (s *Service) Handler() http.Handler {
	return s.api.Handler(s.middleware(s.Routes()))
}

type ctxKey int

const versionKey ctxKey = iota

// projectInPath matches the optional project id segment Nova accepts in
// URLs (/v2.1/{project_id}/servers), which older catalogs still carry.
var projectInPath = regexp.MustCompile(`^/v2(\.1)?/([0-9a-fA-F]{32}|[0-9a-fA-F-]{36})(/.*)?$`)

// middleware adds what every Nova response carries: the request id under
// its compute name too, and microversion negotiation with its headers.
func (s *Service) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Compute-Request-Id", w.Header().Get(api.RequestIDHeader))
		if m := projectInPath.FindStringSubmatch(r.URL.Path); m != nil {
			r.URL.Path = "/v2.1" + m[3]
			r.URL.RawPath = ""
		}
		if r.URL.Path == "/v2" || r.URL.Path == "/v2/" {
			r.URL.Path = "/v2.0"
		} else if strings.HasPrefix(r.URL.Path, "/v2/") {
			// The legacy v2 endpoint is the v2.1 API pinned to 2.1, as
			// Nova's v2 compatibility mode serves it.
			r.URL.Path = "/v2.1" + strings.TrimPrefix(r.URL.Path, "/v2")
			r.URL.RawPath = ""
			r.Header.Del("OpenStack-API-Version")
			r.Header.Del("X-OpenStack-Nova-API-Version")
		}
		if r.URL.Path == "/" || r.URL.Path == "/v2.0" {
			next.ServeHTTP(w, r)
			return
		}
		// Nova's router does not take /servers/ for /servers: a trailing
		// slash after a resource is a 404 (Tempest checks it with
		// DELETE /images/ and GET /os-simple-tenant-usage/), while the
		// version document answers /v2.1/ too.
		if p := strings.TrimRight(r.URL.Path, "/"); p != r.URL.Path && strings.Count(p, "/") >= 2 {
			s.api.WriteError(w, r, api.NotFound("The resource could not be found."))
			return
		}
		v, err := s.mv.Negotiate(w, r)
		if err != nil {
			s.api.WriteError(w, r, api.AsError(err))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), versionKey, v)))
	})
}

// version is the microversion a request negotiated.
func version(r *http.Request) api.Version {
	if v, ok := r.Context().Value(versionKey).(api.Version); ok {
		return v
	}
	return MinVersion
}

// at reports whether the request asked for microversion 2.minor or newer.
func at(r *http.Request, minor int) bool { return version(r).AtLeast(2, minor) }

// caller is who makes a request.
type caller struct {
	project string
	user    string
	admin   bool
	token   string
}

func (s *Service) caller(r *http.Request) caller {
	q := s.api.Requester(r)
	return caller{project: q.ProjectID, user: q.UserID, admin: q.Admin, token: q.Token}
}

// authorize enforces a policy action against a target, answering 403 in
// Nova's words.
func (s *Service) authorize(r *http.Request, action string, target map[string]any) error {
	if err := s.api.Authorize(r, action, target); err != nil {
		var e *api.Error
		if errors.As(err, &e) && e.Status == http.StatusForbidden {
			return api.Forbidden("Policy doesn't allow %s to be performed.", action)
		}
		return err
	}
	return nil
}

// can reports whether a policy action is allowed, for optional output.
func (s *Service) can(r *http.Request, action string, target map[string]any) bool {
	return s.api.Authorize(r, action, target) == nil
}

// projectTarget is the policy target for project-owned calls.
func projectTarget(project, user string) map[string]any {
	return map[string]any{"project_id": project, "user_id": user}
}

// writeTx runs fn in a transaction, again when it lost a race (a unique
// sequence number, a row locked by a concurrent claim); fn reads afresh
// each time. A race lost every time is Nova's 409.
func (s *Service) writeTx(ctx context.Context, fn func(tx *store.Tx) error) error {
	err := s.db.RetryTx(ctx, 30, store.IsRaceLost, fn)
	if errors.Is(err, store.ErrRetriesExhausted) {
		return api.Conflict("The request could not be completed because of a concurrent change; please retry.")
	}
	return err
}

func newID() string { return uuid.NewString() }

func isUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

// now is the time stamped on writes.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// isoZ renders Nova's server timestamps: 2013-09-03T04:01:32Z.
func isoZ(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// isoMicro renders the timestamps of Nova's other resources:
// 2014-05-07T12:06:13.681238 (naive UTC with microseconds).
func isoMicro(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000") }

func parseTime(s string) time.Time {
	t, _ := store.ParseTime(s)
	return t
}

// nullTime renders a nullable stored time with f, or JSON null.
func nullTime(s *string, f func(time.Time) string) any {
	if s == nil || *s == "" {
		return nil
	}
	return f(parseTime(*s))
}

func (s *Service) baseURL(r *http.Request) string {
	return strings.TrimSuffix(api.BaseURL(r, s.cfg.PublicURL), "/")
}

// links returns Nova's self and bookmark links of a resource.
func (s *Service) links(r *http.Request, collection, id string) []api.Link {
	base := s.baseURL(r)
	return []api.Link{
		{Rel: "self", Href: base + "/v2.1/" + collection + "/" + id},
		{Rel: "bookmark", Href: base + "/" + collection + "/" + id},
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
