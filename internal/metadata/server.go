package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/compute"
)

// ServerConfig configures the metadata role.
type ServerConfig struct {
	// Secret is the secret shared with the proxies; requests not signed
	// with it are refused.
	Secret []byte
	// Guest loads an instance, compute.ErrNotFound when there is none
	// (compute.LookupGuest on the database).
	Guest func(ctx context.Context, id string) (compute.GuestInfo, error)
	// Network returns an instance's ports, networks and subnets.
	Network interface {
		InstanceNetwork(ctx context.Context, instanceID string) (NetworkInfo, error)
	}
	// CacheTTL keeps an instance's rendered metadata this long (Nova's
	// metadata_cache_expiration, 15s); negative disables the cache.
	CacheTTL time.Duration
	Log      *slog.Logger
}

// Server is the metadata role's HTTP handler.
type Server struct {
	cfg   ServerConfig
	cache *ttlCache[string, *guestContent]
}

// guestContent is an instance's rendering with the project it belongs to.
type guestContent struct {
	projectID string
	content   *Content
}

var _ http.Handler = (*Server)(nil)

// NewServer returns the metadata role's handler.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 15 * time.Second
	}
	return &Server{cfg: cfg, cache: newTTLCache[string, *guestContent](cfg.CacheTTL)}
}

// statusError is a refusal with its HTTP status.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func refuse(code int, format string, args ...any) error {
	return &statusError{code: code, msg: fmt.Sprintf(format, args...)}
}

// reply is a response body and its type.
type reply struct {
	body        []byte
	contentType string
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep, err := s.serve(r)
	if err != nil {
		code := http.StatusInternalServerError
		var se *statusError
		if errors.As(err, &se) {
			code = se.code
		} else {
			s.cfg.Log.Error("metadata request", "path", r.URL.Path, "instance", r.Header.Get(HeaderInstanceID), "err", err)
			err = errors.New("an unknown error has occurred")
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", rep.contentType)
	_, _ = w.Write(rep.body)
}

func (s *Server) serve(r *http.Request) (reply, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return reply{}, refuse(http.StatusMethodNotAllowed, "method %s is not allowed", r.Method)
	}
	id, tenant, sig := r.Header.Get(HeaderInstanceID), r.Header.Get(HeaderTenantID), r.Header.Get(HeaderSignature)
	// The checks and messages are Nova's, so that an operator debugging a
	// proxy sees what Nova would have said.
	switch {
	case id == "":
		return reply{}, refuse(http.StatusBadRequest, "X-Instance-ID header is missing from request.")
	case sig == "":
		return reply{}, refuse(http.StatusBadRequest, "X-Instance-ID-Signature header is missing from request.")
	case tenant == "":
		return reply{}, refuse(http.StatusBadRequest, "X-Tenant-ID header is missing from request.")
	}
	if !validSignature(s.cfg.Secret, id, sig) {
		s.cfg.Log.Warn("metadata request with a bad signature; do the proxies share this secret?",
			"instance", id, "forwarded_for", r.Header.Get(HeaderForwarded))
		return reply{}, refuse(http.StatusForbidden, "Invalid proxy request signature.")
	}
	gc, err := s.content(r.Context(), id)
	if err != nil {
		return reply{}, err
	}
	if gc.projectID != tenant {
		// Nova answers as if the instance did not exist, so a proxy cannot
		// learn another project's instances.
		s.cfg.Log.Warn("metadata request tenant does not match the instance's", "instance", id, "tenant", tenant)
		return reply{}, refuse(http.StatusNotFound, "Instance %s could not be found.", id)
	}
	return route(gc.content, r.URL.Path)
}

// content renders an instance, or finds its rendering in the cache.
func (s *Server) content(ctx context.Context, id string) (*guestContent, error) {
	if gc, ok := s.cache.get(id); ok {
		return gc, nil
	}
	g, err := s.cfg.Guest(ctx, id)
	if errors.Is(err, compute.ErrNotFound) {
		return nil, refuse(http.StatusNotFound, "Instance %s could not be found.", id)
	}
	if err != nil {
		return nil, fmt.Errorf("metadata of instance %s: %w", id, err)
	}
	var ni NetworkInfo
	if s.cfg.Network != nil {
		if ni, err = s.cfg.Network.InstanceNetwork(ctx, id); err != nil {
			return nil, fmt.Errorf("metadata of instance %s: %w", id, err)
		}
	}
	c, err := NewContent(instanceFromGuest(g), ni)
	if err != nil {
		return nil, err
	}
	gc := &guestContent{projectID: g.ProjectID, content: c}
	s.cache.put(id, gc)
	return gc, nil
}

const (
	textPlain = "text/plain; charset=UTF-8"
	appJSON   = "application/json"
)

var errNoPath = refuse(http.StatusNotFound, "The resource could not be found.")

// route answers one path as Nova's metadata handler: the root lists the
// EC2 versions, /openstack/... is the OpenStack format, anything else the
// EC2 format.
func route(c *Content, p string) (reply, error) {
	p = path.Clean("/" + p)
	if p == "/" {
		return lines(append(slices.Clone(EC2Versions), latest)), nil
	}
	tokens := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if tokens[0] == "openstack" {
		return routeOpenStack(c, tokens[1:])
	}
	version, ok := EC2Version(tokens[0])
	if !ok {
		return reply{}, errNoPath
	}
	node, ok := EC2Lookup(c.EC2(version), tokens[1:])
	if !ok {
		return reply{}, errNoPath
	}
	return reply{body: EC2Render(node), contentType: textPlain}, nil
}

func routeOpenStack(c *Content, tokens []string) (reply, error) {
	if len(tokens) == 0 {
		return lines(append(slices.Clone(OpenStackVersions), latest)), nil
	}
	version, ok := OpenStackVersion(tokens[0])
	if !ok || len(tokens) > 2 {
		return reply{}, errNoPath
	}
	if len(tokens) == 1 {
		return lines(c.OpenStackFiles(version)), nil
	}
	name := tokens[1]
	if name == filePassword && atLeast(version, versionGrizzly) {
		// Guests may post an encrypted password here; Nimbus keeps none
		// yet, and Nova's answer for "none" is an empty body.
		return reply{contentType: textPlain}, nil
	}
	b, ok, err := c.OpenStackFile(version, name)
	if err != nil {
		return reply{}, err
	}
	if !ok {
		return reply{}, errNoPath
	}
	ct := textPlain
	if strings.HasSuffix(name, ".json") {
		ct = appJSON
	}
	return reply{body: b, contentType: ct}, nil
}

func lines(items []string) reply {
	return reply{body: []byte(strings.Join(items, "\n")), contentType: textPlain}
}
