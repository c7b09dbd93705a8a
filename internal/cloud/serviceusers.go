package cloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/nimbus-cloud/nimbus/internal/config"
)

// ServiceUser is the account a service runs as in identity, as OpenStack
// installs create for glance, nova and the rest: a user in the service
// project holding the service and admin roles.
type ServiceUser struct {
	Name, Password, Project string
	// UserDomain and ProjectDomain are domain names.
	UserDomain, ProjectDomain string
	Roles                     []string
}

// serviceUserRoles are what OpenStack's install guides give service users:
// admin (`openstack role add --project service --user glance admin`) and
// service, which newer policies (service_role) look for.
var serviceUserRoles = []string{"service", "admin"}

// ServiceUsers lists the service users the config gives a password for.
func ServiceUsers(cfg config.Config) []ServiceUser {
	var out []ServiceUser
	for _, a := range []config.ServiceAuth{cfg.Image.Auth, cfg.Network.Auth, cfg.Compute.Auth, cfg.Volume.Auth, cfg.Object.Auth} {
		if a.Password != "" {
			out = append(out, ServiceUser{Name: a.Username, Password: a.Password, Project: a.ProjectName,
				UserDomain: a.UserDomainName, ProjectDomain: a.ProjectDomainName, Roles: serviceUserRoles})
		}
	}
	return out
}

// AdminLogin is the bootstrap admin that creates service users.
type AdminLogin struct {
	// User and Project default to admin, in the Default domain.
	User, Project, Password string
}

// EnsureServiceUsers creates each user, its project and role assignments
// when missing, idempotently. It speaks the identity API to h in memory,
// as an operator's `openstack user create` would over the network, so
// identity's own rules (password policy, change broadcasts) apply. With
// resetPassword, users that exist get the configured password again, as
// `nimbus manage bootstrap` does for the admin; otherwise existing users
// are left as they are.
func EnsureServiceUsers(ctx context.Context, h http.Handler, admin AdminLogin, users []ServiceUser, resetPassword bool) error {
	if len(users) == 0 {
		return nil
	}
	if admin.User == "" {
		admin.User = "admin"
	}
	if admin.Project == "" {
		admin.Project = "admin"
	}
	k := &localKeystone{h: h}
	if err := k.login(ctx, admin); err != nil {
		return fmt.Errorf("service users: %w", err)
	}
	for _, u := range users {
		if err := k.ensureUser(ctx, u, resetPassword); err != nil {
			return fmt.Errorf("service user %s: %w", u.Name, err)
		}
	}
	return nil
}

// localKeystone is a minimal identity API client that calls the handler
// directly.
type localKeystone struct {
	h     http.Handler
	token string
}

// errStatus is an unexpected answer of the identity API.
type errStatus struct {
	method, path string
	status       int
	body         string
}

func (e *errStatus) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, e.body)
}

// call sends one request and decodes a JSON answer into out when the
// status is one of want.
func (k *localKeystone) call(ctx context.Context, method, path string, body, out any, want ...int) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req := httptest.NewRequestWithContext(ctx, method, path, rd)
	req.RemoteAddr = "127.0.0.1:0"
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if k.token != "" {
		req.Header.Set("X-Auth-Token", k.token)
	}
	rec := httptest.NewRecorder()
	k.h.ServeHTTP(rec, req)
	resp := rec.Result()
	for _, w := range want {
		if resp.StatusCode == w {
			if out != nil {
				if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
					return resp, fmt.Errorf("%s %s: decode: %w", method, path, err)
				}
			}
			return resp, nil
		}
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp, &errStatus{method: method, path: path, status: resp.StatusCode, body: string(data)}
}

func (k *localKeystone) login(ctx context.Context, a AdminLogin) error {
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
			"name": a.User, "password": a.Password, "domain": map[string]any{"id": "default"}}}},
		"scope": map[string]any{"project": map[string]any{"name": a.Project, "domain": map[string]any{"id": "default"}}},
	}}
	resp, err := k.call(ctx, http.MethodPost, "/v3/auth/tokens?nocatalog", body, nil, http.StatusCreated)
	if err != nil {
		return fmt.Errorf("log in as %s: %w", a.User, err)
	}
	k.token = resp.Header.Get("X-Subject-Token")
	return nil
}

type ref struct {
	ID string `json:"id"`
}

// find returns the id of the only entry of a filtered list, or "".
func (k *localKeystone) find(ctx context.Context, collection string, filter url.Values) (string, error) {
	var out map[string]json.RawMessage
	path := "/v3/" + collection + "?" + filter.Encode()
	if _, err := k.call(ctx, http.MethodGet, path, nil, &out, http.StatusOK); err != nil {
		return "", err
	}
	var list []ref
	if err := json.Unmarshal(out[collection], &list); err != nil {
		return "", fmt.Errorf("GET %s: %w", path, err)
	}
	switch len(list) {
	case 0:
		return "", nil
	case 1:
		return list[0].ID, nil
	default:
		return "", fmt.Errorf("%d %s match %s", len(list), collection, filter.Encode())
	}
}

// ensure finds an entry or creates it; a concurrent creation by another
// controller (409) is resolved by finding again.
func (k *localKeystone) ensure(ctx context.Context, collection, single string, filter url.Values, create map[string]any) (id string, created bool, err error) {
	if id, err = k.find(ctx, collection, filter); err != nil || id != "" {
		return id, false, err
	}
	var out map[string]ref
	_, err = k.call(ctx, http.MethodPost, "/v3/"+collection, map[string]any{single: create}, &out, http.StatusCreated)
	if se := (*errStatus)(nil); errors.As(err, &se) && se.status == http.StatusConflict {
		id, err = k.find(ctx, collection, filter)
		if err == nil && id == "" {
			err = se
		}
		return id, false, err
	}
	if err != nil {
		return "", false, err
	}
	return out[single].ID, true, nil
}

func (k *localKeystone) domainID(ctx context.Context, name string) (string, error) {
	id, err := k.find(ctx, "domains", url.Values{"name": {name}})
	if err == nil && id == "" {
		err = fmt.Errorf("domain %q does not exist", name)
	}
	return id, err
}

func (k *localKeystone) ensureUser(ctx context.Context, u ServiceUser, resetPassword bool) error {
	projectDomain, err := k.domainID(ctx, u.ProjectDomain)
	if err != nil {
		return err
	}
	userDomain, err := k.domainID(ctx, u.UserDomain)
	if err != nil {
		return err
	}
	projectID, _, err := k.ensure(ctx, "projects", "project", url.Values{"name": {u.Project}, "domain_id": {projectDomain}},
		map[string]any{"name": u.Project, "domain_id": projectDomain, "enabled": true, "description": "Service Project"})
	if err != nil {
		return fmt.Errorf("project %s: %w", u.Project, err)
	}
	userID, created, err := k.ensure(ctx, "users", "user", url.Values{"name": {u.Name}, "domain_id": {userDomain}},
		map[string]any{"name": u.Name, "domain_id": userDomain, "default_project_id": projectID, "enabled": true,
			"password": u.Password, "description": "Service user"})
	if err != nil {
		return err
	}
	if resetPassword && !created {
		if _, err := k.call(ctx, http.MethodPatch, "/v3/users/"+userID,
			map[string]any{"user": map[string]any{"password": u.Password, "enabled": true}}, nil, http.StatusOK); err != nil {
			return fmt.Errorf("reset password: %w", err)
		}
	}
	for _, role := range u.Roles {
		roleID, err := k.find(ctx, "roles", url.Values{"name": {role}})
		if err != nil {
			return err
		}
		if roleID == "" {
			return fmt.Errorf("role %q does not exist", role)
		}
		// Granting is idempotent in the API itself.
		if _, err := k.call(ctx, http.MethodPut, "/v3/projects/"+projectID+"/users/"+userID+"/roles/"+roleID,
			nil, nil, http.StatusNoContent); err != nil {
			return fmt.Errorf("grant %s: %w", role, err)
		}
	}
	return nil
}
