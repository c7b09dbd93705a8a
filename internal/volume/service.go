package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Config configures the volume service.
type Config struct {
	// PublicURL is the service's base URL (http://host:8776), for links
	// and version documents; taken from the request when empty.
	PublicURL string
	// Bus carries commands to the volume agents and their reports back.
	// Without it volumes cannot be created (they go to error).
	Bus *bus.Bus
	// Images looks up images and creates upload targets in the image
	// service with the caller's token; nil refuses imageRef and uploads.
	Images ImageService
	// DefaultAvailabilityZone is the zone of volumes that ask for none
	// ("nova" when empty, Cinder's storage_availability_zone).
	DefaultAvailabilityZone string
	// Quotas overrides the default limits by resource name.
	Quotas map[string]int
	// ServiceDownTime: a storage host silent this long is down (60s).
	ServiceDownTime time.Duration
	// CallTimeout bounds an export call to a storage host (30s).
	CallTimeout time.Duration
	// ReconcileAfter is how long a volume may sit in creating or
	// deleting before a heartbeat of its host may settle it (2 minutes).
	ReconcileAfter time.Duration

	// maxVersion, set only by tests (export_test.go), raises the
	// advertised maximum to reach behaviour written for versions past
	// the first one not yet honoured.
	maxVersion api.Version
}

// Service serves the block storage API.
type Service struct {
	cfg Config
	db  *store.DB
	api *api.Service
	log *slog.Logger
	mv  api.Microversions

	mu   sync.Mutex
	subs []*bus.Subscription // guarded by mu
}

// MinVersion and MaxVersion are the microversions this service speaks.
// Only what is implemented is advertised (see docs/volumes-plan.md §2.1
// and history in microversions.go): 3.13, generic volume groups, is the
// first version not honoured.
var (
	MinVersion = api.Version{Major: 3, Minor: 0}
	MaxVersion = api.Version{Major: 3, Minor: 12}
)

// New migrates the volume schema, makes sure the default volume type
// exists and returns the service; Start connects it to the agents.
func New(ctx context.Context, cfg Config, db *store.DB, svc *api.Service, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.DefaultAvailabilityZone == "" {
		cfg.DefaultAvailabilityZone = "nova"
	}
	if cfg.ServiceDownTime <= 0 {
		cfg.ServiceDownTime = 60 * time.Second
	}
	if cfg.ReconcileAfter <= 0 {
		cfg.ReconcileAfter = 2 * time.Minute
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 30 * time.Second
	}
	for k, v := range cfg.Quotas {
		if _, ok := defaultQuotas[k]; !ok {
			return nil, fmt.Errorf("volume service: unknown quota resource %q", k)
		}
		if v < -1 {
			return nil, fmt.Errorf("volume service: quota %s %d is below -1", k, v)
		}
	}
	if svc.Errors == nil {
		svc.Errors = api.NovaErrors
	}
	if err := db.Migrate(ctx, "volume", schema()); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, db: db, api: svc, log: log,
		mv: api.Microversions{ServiceType: "volume", Min: MinVersion, Max: MaxVersion}}
	if cfg.maxVersion != (api.Version{}) {
		s.mv.Max = cfg.maxVersion
	}
	if err := s.ensureDefaultType(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler returns the volume API with its middleware.
func (s *Service) Handler() http.Handler {
	return s.api.Handler(s.middleware(s.Routes()))
}

type ctxKey int

const versionKey ctxKey = iota

// middleware negotiates the microversion and refuses a trailing slash
// after a resource: Cinder's router answers GET /volumes/ with 404, and
// Tempest checks it, while the shared router would take it for /volumes.
func (s *Service) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/" || p == "/v3" || p == "/v3/" {
			next.ServeHTTP(w, r)
			return
		}
		if strings.HasSuffix(p, "/") {
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

// authorize enforces a policy action on a project's resource.
func (s *Service) authorize(r *http.Request, action, project string) error {
	err := s.api.Authorize(r, action, map[string]any{"project_id": project})
	var e *api.Error
	if errors.As(err, &e) && e.Status == http.StatusForbidden {
		return api.Forbidden("Policy doesn't allow %s to be performed.", action)
	}
	return err
}

// baseURL is the scheme and host for links in bodies.
func (s *Service) baseURL(r *http.Request) string {
	return strings.TrimSuffix(api.BaseURL(r, s.cfg.PublicURL), "/")
}

// writeTx runs fn in a transaction, again when it lost a race or found
// SQLite busy; fn reads afresh each time. A race lost every time is
// Cinder's 409.
func (s *Service) writeTx(ctx context.Context, fn func(tx *store.Tx) error) error {
	err := s.db.RetryTx(ctx, 30, retryable, fn)
	if errors.Is(err, store.ErrRetriesExhausted) {
		return api.Conflict("The request could not be completed because of a concurrent change; please retry.")
	}
	return err
}

// retryable adds SQLite's busy answer to the races every service retries:
// volume transactions run beside the agents' status reports.
func retryable(err error) bool { return store.IsRaceLost(err) || store.IsBusy(err) }

func newID() string { return uuid.NewString() }

func isUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

// now is the time stamped on writes.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// isoMicro renders Cinder's timestamps: 2018-11-28T06:21:12.715987.
func isoMicro(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000") }

func parseTime(s string) time.Time {
	t, _ := store.ParseTime(s)
	return t
}

// timeOrNil renders a stored time, or null when unset.
func timeOrNil(s string) any {
	if s == "" {
		return nil
	}
	return isoMicro(parseTime(s))
}

func accepted() *api.Response { return &api.Response{Status: http.StatusAccepted} }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
