package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Regions.

type region struct {
	ID, Description, ParentID, Extra string
}

const regionColumns = `id, description, COALESCE(parent_region_id, ''), extra`

func scanRegion(row store.Scanner) (*region, error) {
	rg := &region{}
	if err := row.Scan(&rg.ID, &rg.Description, &rg.ParentID, &rg.Extra); err != nil {
		return nil, err
	}
	return rg, nil
}

func (s *Service) getRegion(ctx context.Context, id string) (*region, error) {
	rg, err := store.QueryOne(ctx, s.db, scanRegion, `SELECT `+regionColumns+` FROM regions WHERE id = ?`, id)
	return rg, err
}

func (s *Service) regionJSON(r *http.Request, rg *region) map[string]any {
	return withExtra(map[string]any{"id": rg.ID, "description": rg.Description,
		"parent_region_id": nullable(rg.ParentID), "links": s.selfLinks(r, "/v3/regions/"+rg.ID)}, rg.Extra)
}

type regionBody struct {
	ID             string               `json:"id"`
	Description    api.Optional[string] `json:"description"`
	ParentRegionID api.Optional[string] `json:"parent_region_id"`
}

func (s *Service) createRegion(r *http.Request) (*api.Response, error) {
	return s.putRegion(r, "")
}

func (s *Service) createRegionWithID(r *http.Request) (*api.Response, error) {
	return s.putRegion(r, r.PathValue("region_id"))
}

func (s *Service) putRegion(r *http.Request, pathID string) (*api.Response, error) {
	ctx := r.Context()
	var b regionBody
	data, err := readRegionBody(r, &b)
	if err != nil {
		return nil, err
	}
	rg := &region{ID: b.ID, Description: b.Description.Value, ParentID: b.ParentRegionID.Value, Extra: encodeExtra(data)}
	if pathID != "" {
		if b.ID != "" && b.ID != pathID {
			return nil, api.BadRequest("The region id in the body does not match the URL.")
		}
		rg.ID = pathID
	}
	if rg.ID == "" {
		rg.ID = newID()
	}
	if len(rg.ID) > 255 {
		return nil, api.BadRequest("Invalid input for field 'region.id': longer than 255 characters.")
	}
	if rg.ParentID != "" {
		if _, err := s.getRegion(ctx, rg.ParentID); errors.Is(err, store.ErrNotFound) {
			return nil, api.NotFound("Could not find region: %s.", rg.ParentID)
		} else if err != nil {
			return nil, err
		}
	}
	_, err = s.db.Exec(ctx, `INSERT INTO regions (id, description, parent_region_id, extra) VALUES (?, ?, ?, ?)`,
		rg.ID, rg.Description, nullable(rg.ParentID), rg.Extra)
	if store.IsConflict(err) {
		return nil, api.Conflict("Conflict occurred attempting to store region - Duplicate ID, %s.", rg.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("create region: %w", err)
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"region": s.regionJSON(r, rg)}), nil
}

func readRegionBody(r *http.Request, b *regionBody) (map[string]any, error) {
	extra, err := readEnvelope(r, "region", b, false)
	if err != nil {
		return nil, err
	}
	return extra, nil
}

func (s *Service) loadRegion(r *http.Request) (*region, error) {
	rg, err := s.getRegion(r.Context(), r.PathValue("region_id"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find region: %s.", r.PathValue("region_id"))
	}
	return rg, err
}

func (s *Service) showRegion(r *http.Request) (*api.Response, error) {
	rg, err := s.loadRegion(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"region": s.regionJSON(r, rg)}), nil
}

func (s *Service) listRegions(r *http.Request) (*api.Response, error) {
	q, args := `SELECT `+regionColumns+` FROM regions`, []any{}
	if v := r.URL.Query().Get("parent_region_id"); v != "" {
		q, args = q+` WHERE parent_region_id = ?`, append(args, v)
	}
	regions, err := store.QueryAll(r.Context(), s.db, scanRegion, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list regions: %w", err)
	}
	return listResponse(s, r, "regions", regions, s.regionJSON), nil
}

func (s *Service) updateRegion(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b regionBody
	extra, err := readRegionBody(r, &b)
	if err != nil {
		return nil, err
	}
	rg, err := s.loadRegion(r)
	if err != nil {
		return nil, err
	}
	if b.Description.Set {
		rg.Description = b.Description.Value
	}
	if b.ParentRegionID.Set {
		parent := b.ParentRegionID.Value
		if parent != "" {
			// Refuse a parent that is the region itself or below it.
			for cur := parent; cur != ""; {
				if cur == rg.ID {
					return nil, api.BadRequest("Circular reference or a repeated entry found in region tree - %s.", rg.ID)
				}
				p, err := s.getRegion(ctx, cur)
				if errors.Is(err, store.ErrNotFound) {
					return nil, api.NotFound("Could not find region: %s.", cur)
				} else if err != nil {
					return nil, err
				}
				cur = p.ParentID
			}
		}
		rg.ParentID = parent
	}
	rg.Extra = mergeExtra(rg.Extra, extra)
	if _, err := s.db.Exec(ctx, `UPDATE regions SET description = ?, parent_region_id = ?, extra = ? WHERE id = ?`,
		rg.Description, nullable(rg.ParentID), rg.Extra, rg.ID); err != nil {
		return nil, fmt.Errorf("update region %s: %w", rg.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"region": s.regionJSON(r, rg)}), nil
}

func (s *Service) deleteRegion(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	rg, err := s.loadRegion(r)
	if err != nil {
		return nil, err
	}
	// A region goes with its child regions, as in Keystone, unless any of
	// them still has endpoints.
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		tree := []string{rg.ID}
		for i := 0; i < len(tree); i++ {
			children, err := store.QueryStrings(ctx, tx, `SELECT id FROM regions WHERE parent_region_id = ?`, tree[i])
			if err != nil {
				return err
			}
			tree = append(tree, children...)
			var endpoints int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM endpoints WHERE region_id = ?`, tree[i]).Scan(&endpoints); err != nil {
				return err
			}
			if endpoints > 0 {
				return api.Forbidden("Unable to delete region %s because it or its child regions have associated endpoints.", rg.ID)
			}
		}
		for i := len(tree) - 1; i >= 0; i-- {
			if _, err := tx.Exec(ctx, `DELETE FROM regions WHERE id = ?`, tree[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.changed()
	return api.NoContent(), nil
}

// Services.

type service struct {
	ID, Type string
	Enabled  bool
	Extra    string
}

const serviceColumns = `id, type, enabled, extra`

func scanService(row store.Scanner) (*service, error) {
	sv := &service{}
	if err := row.Scan(&sv.ID, &sv.Type, &sv.Enabled, &sv.Extra); err != nil {
		return nil, err
	}
	return sv, nil
}

func (s *Service) getService(ctx context.Context, id string) (*service, error) {
	sv, err := store.QueryOne(ctx, s.db, scanService, `SELECT `+serviceColumns+` FROM services WHERE id = ?`, id)
	return sv, err
}

func (s *Service) serviceJSON(r *http.Request, sv *service) map[string]any {
	return withExtra(map[string]any{"id": sv.ID, "type": sv.Type, "enabled": sv.Enabled,
		"links": s.selfLinks(r, "/v3/services/"+sv.ID)}, sv.Extra)
}

type serviceBody struct {
	Type    api.Optional[string] `json:"type"`
	Enabled api.Optional[bool]   `json:"enabled"`
}

func (s *Service) createService(r *http.Request) (*api.Response, error) {
	var b serviceBody
	extra, err := readEnvelope(r, "service", &b, false)
	if err != nil {
		return nil, err
	}
	if b.Type.Value == "" || len(b.Type.Value) > 255 {
		return nil, api.BadRequest("Invalid input for field 'service.type': a type of 1 to 255 characters is required.")
	}
	sv := &service{ID: newID(), Type: b.Type.Value, Enabled: !b.Enabled.Set || b.Enabled.Value, Extra: encodeExtra(extra)}
	if _, err := s.db.Exec(r.Context(), `INSERT INTO services (id, type, enabled, extra) VALUES (?, ?, ?, ?)`, sv.ID, sv.Type, sv.Enabled, sv.Extra); err != nil {
		return nil, fmt.Errorf("create service: %w", err)
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"service": s.serviceJSON(r, sv)}), nil
}

func (s *Service) loadService(r *http.Request) (*service, error) {
	sv, err := s.getService(r.Context(), r.PathValue("service_id"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find service: %s.", r.PathValue("service_id"))
	}
	return sv, err
}

func (s *Service) showService(r *http.Request) (*api.Response, error) {
	sv, err := s.loadService(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"service": s.serviceJSON(r, sv)}), nil
}

func (s *Service) listServices(r *http.Request) (*api.Response, error) {
	q, args := `SELECT `+serviceColumns+` FROM services`, []any{}
	if v := r.URL.Query().Get("type"); v != "" {
		q, args = q+` WHERE type = ?`, append(args, v)
	}
	all, err := store.QueryAll(r.Context(), s.db, scanService, q+` ORDER BY type, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	// Keystone keeps a service's name among its extra attributes, so the
	// name filter applies after decoding them.
	name := r.URL.Query().Get("name")
	var services []*service
	for _, sv := range all {
		if name == "" || decodeExtra(sv.Extra)["name"] == name {
			services = append(services, sv)
		}
	}
	return listResponse(s, r, "services", services, s.serviceJSON), nil
}

func (s *Service) updateService(r *http.Request) (*api.Response, error) {
	var b serviceBody
	extra, err := readEnvelope(r, "service", &b, false)
	if err != nil {
		return nil, err
	}
	sv, err := s.loadService(r)
	if err != nil {
		return nil, err
	}
	if b.Type.Set {
		if b.Type.Value == "" {
			return nil, api.BadRequest("Invalid input for field 'service.type': must not be empty.")
		}
		sv.Type = b.Type.Value
	}
	if b.Enabled.Set {
		sv.Enabled = b.Enabled.Value
	}
	sv.Extra = mergeExtra(sv.Extra, extra)
	if _, err := s.db.Exec(r.Context(), `UPDATE services SET type = ?, enabled = ?, extra = ? WHERE id = ?`, sv.Type, sv.Enabled, sv.Extra, sv.ID); err != nil {
		return nil, err
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"service": s.serviceJSON(r, sv)}), nil
}

func (s *Service) deleteService(r *http.Request) (*api.Response, error) {
	sv, err := s.loadService(r)
	if err != nil {
		return nil, err
	}
	err = s.db.InTx(r.Context(), func(tx *store.Tx) error {
		if _, err := tx.Exec(r.Context(), `DELETE FROM endpoints WHERE service_id = ?`, sv.ID); err != nil {
			return err
		}
		_, err := tx.Exec(r.Context(), `DELETE FROM services WHERE id = ?`, sv.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.changed()
	return api.NoContent(), nil
}

// Endpoints.

type endpoint struct {
	ID, ServiceID, Interface, URL, RegionID string
	Enabled                                 bool
	Extra                                   string
}

const endpointColumns = `id, service_id, interface, url, COALESCE(region_id, ''), enabled, extra`

func scanEndpoint(row store.Scanner) (*endpoint, error) {
	e := &endpoint{}
	return e, row.Scan(&e.ID, &e.ServiceID, &e.Interface, &e.URL, &e.RegionID, &e.Enabled, &e.Extra)
}

func (s *Service) endpointJSON(r *http.Request, e *endpoint) map[string]any {
	return withExtra(map[string]any{"id": e.ID, "service_id": e.ServiceID, "interface": e.Interface, "url": e.URL,
		"region_id": nullable(e.RegionID), "region": nullable(e.RegionID), "enabled": e.Enabled,
		"links": s.selfLinks(r, "/v3/endpoints/"+e.ID)}, e.Extra)
}

type endpointBody struct {
	ServiceID api.Optional[string] `json:"service_id"`
	Interface api.Optional[string] `json:"interface"`
	URL       api.Optional[string] `json:"url"`
	RegionID  api.Optional[string] `json:"region_id"`
	Region    api.Optional[string] `json:"region"`
	Enabled   api.Optional[bool]   `json:"enabled"`
}

func validInterface(i string) bool { return i == "public" || i == "internal" || i == "admin" }

func validEndpointURL(raw string) bool {
	u, err := url.Parse(strings.NewReplacer("$(", "", ")s", "", "%(", "").Replace(raw))
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (s *Service) createEndpoint(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b endpointBody
	extra, err := readEnvelope(r, "endpoint", &b, false)
	if err != nil {
		return nil, err
	}
	e := &endpoint{ID: newID(), ServiceID: b.ServiceID.Value, Interface: b.Interface.Value, URL: b.URL.Value,
		RegionID: b.RegionID.Value, Enabled: !b.Enabled.Set || b.Enabled.Value, Extra: encodeExtra(extra)}
	if e.RegionID == "" {
		e.RegionID = b.Region.Value
	}
	if !validInterface(e.Interface) {
		return nil, api.BadRequest("Invalid input for field 'endpoint.interface': must be one of public, internal or admin.")
	}
	if !validEndpointURL(e.URL) {
		return nil, api.BadRequest("Invalid input for field 'endpoint.url': %q is not a valid http(s) URL.", e.URL)
	}
	if _, err := s.getService(ctx, e.ServiceID); errors.Is(err, store.ErrNotFound) {
		return nil, api.BadRequest("Could not find service: %s.", e.ServiceID)
	} else if err != nil {
		return nil, err
	}
	if err := s.ensureEndpointRegion(ctx, b.RegionID.Value, b.Region.Value); err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO endpoints (id, service_id, interface, url, region_id, enabled, extra) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.ServiceID, e.Interface, e.URL, nullable(e.RegionID), e.Enabled, e.Extra); err != nil {
		return nil, fmt.Errorf("create endpoint: %w", err)
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"endpoint": s.endpointJSON(r, e)}), nil
}

// ensureEndpointRegion checks an endpoint's region. A region_id must
// exist; the legacy "region" attribute names a region that Keystone
// creates when it does not exist yet.
func (s *Service) ensureEndpointRegion(ctx context.Context, regionID, legacy string) error {
	switch {
	case regionID != "":
		if _, err := s.getRegion(ctx, regionID); errors.Is(err, store.ErrNotFound) {
			return api.BadRequest("Could not find region: %s.", regionID)
		} else if err != nil {
			return err
		}
	case legacy != "":
		if len(legacy) > 255 {
			return api.BadRequest("Invalid input for field 'endpoint.region': longer than 255 characters.")
		}
		_, err := s.db.Exec(ctx, `INSERT INTO regions (id, description) VALUES (?, ?)`, legacy, "")
		if err != nil && !store.IsConflict(err) {
			return fmt.Errorf("create region %s: %w", legacy, err)
		}
	}
	return nil
}

func (s *Service) getEndpoint(ctx context.Context, id string) (*endpoint, error) {
	e, err := store.QueryOne(ctx, s.db, scanEndpoint, `SELECT `+endpointColumns+` FROM endpoints WHERE id = ?`, id)
	return e, err
}

func (s *Service) loadEndpoint(r *http.Request) (*endpoint, error) {
	e, err := s.getEndpoint(r.Context(), r.PathValue("endpoint_id"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find endpoint: %s.", r.PathValue("endpoint_id"))
	}
	return e, err
}

func (s *Service) showEndpoint(r *http.Request) (*api.Response, error) {
	e, err := s.loadEndpoint(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"endpoint": s.endpointJSON(r, e)}), nil
}

func (s *Service) listEndpointRows(ctx context.Context, where string, args ...any) ([]*endpoint, error) {
	q := `SELECT ` + endpointColumns + ` FROM endpoints`
	if where != "" {
		q += ` WHERE ` + where
	}
	return store.QueryAll(ctx, s.db, scanEndpoint, q+` ORDER BY service_id, interface, id`, args...)
}

func (s *Service) listEndpoints(r *http.Request) (*api.Response, error) {
	q := r.URL.Query()
	where, args := []string{"1 = 1"}, []any{}
	for _, f := range []string{"interface", "service_id", "region_id"} {
		if v := q.Get(f); v != "" {
			where, args = append(where, f+" = ?"), append(args, v)
		}
	}
	es, err := s.listEndpointRows(r.Context(), strings.Join(where, " AND "), args...)
	if err != nil {
		return nil, err
	}
	return listResponse(s, r, "endpoints", es, s.endpointJSON), nil
}

func (s *Service) updateEndpoint(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b endpointBody
	extra, err := readEnvelope(r, "endpoint", &b, false)
	if err != nil {
		return nil, err
	}
	e, err := s.loadEndpoint(r)
	if err != nil {
		return nil, err
	}
	if b.ServiceID.Set {
		if _, err := s.getService(ctx, b.ServiceID.Value); err != nil {
			return nil, api.BadRequest("Could not find service: %s.", b.ServiceID.Value)
		}
		e.ServiceID = b.ServiceID.Value
	}
	if b.Interface.Set {
		if !validInterface(b.Interface.Value) {
			return nil, api.BadRequest("Invalid input for field 'endpoint.interface': must be one of public, internal or admin.")
		}
		e.Interface = b.Interface.Value
	}
	if b.URL.Set {
		if !validEndpointURL(b.URL.Value) {
			return nil, api.BadRequest("Invalid input for field 'endpoint.url': %q is not a valid http(s) URL.", b.URL.Value)
		}
		e.URL = b.URL.Value
	}
	if b.RegionID.Set || b.Region.Set {
		rid := b.RegionID.Value
		if !b.RegionID.Set {
			rid = b.Region.Value
		}
		if err := s.ensureEndpointRegion(ctx, b.RegionID.Value, b.Region.Value); err != nil {
			return nil, err
		}
		e.RegionID = rid
	}
	if b.Enabled.Set {
		e.Enabled = b.Enabled.Value
	}
	e.Extra = mergeExtra(e.Extra, extra)
	if _, err := s.db.Exec(ctx, `UPDATE endpoints SET service_id = ?, interface = ?, url = ?, region_id = ?, enabled = ?, extra = ? WHERE id = ?`,
		e.ServiceID, e.Interface, e.URL, nullable(e.RegionID), e.Enabled, e.Extra, e.ID); err != nil {
		return nil, err
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"endpoint": s.endpointJSON(r, e)}), nil
}

func (s *Service) deleteEndpoint(r *http.Request) (*api.Response, error) {
	e, err := s.loadEndpoint(r)
	if err != nil {
		return nil, err
	}
	return s.deleteResource(r.Context(), "endpoint", e.ID, `DELETE FROM endpoints WHERE id = ?`)
}

// catalogFor builds the service catalog a token sees: enabled services
// with their enabled endpoints, URLs with $(project_id)s substituted.
// The rendered catalog depends only on the project (for the endpoint
// filter and URL substitution), so it is built once per project and
// generation and shared, read-only, by every token that shows it —
// already encoded, since every token body embeds it as JSON.
func (s *Service) catalogFor(r *http.Request, v *tokenView) (json.RawMessage, error) {
	projectID := ""
	if v.project != nil {
		projectID = v.project.ID
	}
	return cached(s, "catalog-for:"+projectID, func() (json.RawMessage, error) {
		cat, err := s.buildCatalog(r.Context(), v)
		if err != nil {
			return nil, err
		}
		data, err := json.Marshal(cat)
		if err != nil {
			return nil, fmt.Errorf("encode catalog: %w", err)
		}
		return data, nil
	})
}

func (s *Service) buildCatalog(ctx context.Context, v *tokenView) ([]any, error) {
	rows, err := cached(s, "catalog", func() (*catalogRows, error) { return s.loadCatalogRows(ctx) })
	if err != nil {
		return nil, err
	}
	svcs, eps := rows.services, rows.endpoints
	allowed, err := s.projectEndpointFilter(ctx, v)
	if err != nil {
		return nil, err
	}
	projectID := ""
	if v.project != nil {
		projectID = v.project.ID
	}
	out := []any{}
	for _, sv := range svcs {
		list := []any{}
		for _, e := range eps {
			if e.ServiceID != sv.ID || allowed != nil && !allowed[e.ID] {
				continue
			}
			u := e.URL
			if projectID != "" {
				u = strings.NewReplacer("$(project_id)s", projectID, "$(tenant_id)s", projectID, "%(project_id)s", projectID, "%(tenant_id)s", projectID).Replace(u)
			} else if strings.Contains(u, "$(") || strings.Contains(u, "%(") {
				continue
			}
			list = append(list, map[string]any{"id": e.ID, "interface": e.Interface, "region": nullable(e.RegionID), "region_id": nullable(e.RegionID), "url": u})
		}
		extra := decodeExtra(sv.Extra)
		name, _ := extra["name"].(string)
		out = append(out, map[string]any{"id": sv.ID, "type": sv.Type, "name": name, "endpoints": list})
	}
	return out, nil
}

// catalogRows are the enabled services and endpoints, as cached.
type catalogRows struct {
	services  []*service
	endpoints []*endpoint
}

func (s *Service) loadCatalogRows(ctx context.Context) (*catalogRows, error) {
	out := &catalogRows{}
	var err error
	if out.services, err = store.QueryAll(ctx, s.db, scanService, `SELECT `+serviceColumns+` FROM services WHERE enabled = ? ORDER BY type, id`, true); err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	if out.endpoints, err = s.listEndpointRows(ctx, `enabled = ?`, true); err != nil {
		return nil, err
	}
	return out, nil
}
