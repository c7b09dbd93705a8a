package identity

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// OS-FEDERATION: mappings (rules that turn an identity provider's
// assertion into local users and groups), identity providers and their
// protocols. This is the CRUD Keystone offers; federated authentication
// itself (SAML, OpenID Connect) is not served.

func (s *Service) federationRoutes(rt *api.Router) {
	type R = api.Route
	const p = "/v3/OS-FEDERATION"
	idp := p + "/identity_providers/{idp_id}"
	rt.Handle(
		R{Method: http.MethodGet, Pattern: p + "/mappings", Handler: s.listMappings, Policy: "identity:list_mappings"},
		R{Method: http.MethodPut, Pattern: p + "/mappings/{mapping_id}", Handler: s.createMapping, Policy: "identity:create_mapping"},
		R{Method: http.MethodGet, Pattern: p + "/mappings/{mapping_id}", Handler: s.showMapping, Policy: "identity:get_mapping"},
		R{Method: http.MethodPatch, Pattern: p + "/mappings/{mapping_id}", Handler: s.updateMapping, Policy: "identity:update_mapping"},
		R{Method: http.MethodDelete, Pattern: p + "/mappings/{mapping_id}", Handler: s.deleteMapping, Policy: "identity:delete_mapping"},
		R{Method: http.MethodGet, Pattern: p + "/identity_providers", Handler: s.listIdPs, Policy: "identity:list_identity_providers"},
		R{Method: http.MethodPut, Pattern: idp, Handler: s.createIdP, Policy: "identity:create_identity_provider"},
		R{Method: http.MethodGet, Pattern: idp, Handler: s.showIdP, Policy: "identity:get_identity_provider"},
		R{Method: http.MethodPatch, Pattern: idp, Handler: s.updateIdP, Policy: "identity:update_identity_provider"},
		R{Method: http.MethodDelete, Pattern: idp, Handler: s.deleteIdP, Policy: "identity:delete_identity_provider"},
		R{Method: http.MethodGet, Pattern: idp + "/protocols", Handler: s.listProtocols, Policy: "identity:list_protocols"},
		R{Method: http.MethodPut, Pattern: idp + "/protocols/{protocol_id}", Handler: s.createProtocol, Policy: "identity:create_protocol"},
		R{Method: http.MethodGet, Pattern: idp + "/protocols/{protocol_id}", Handler: s.showProtocol, Policy: "identity:get_protocol"},
		R{Method: http.MethodPatch, Pattern: idp + "/protocols/{protocol_id}", Handler: s.updateProtocol, Policy: "identity:update_protocol"},
		R{Method: http.MethodDelete, Pattern: idp + "/protocols/{protocol_id}", Handler: s.deleteProtocol, Policy: "identity:delete_protocol"},
	)
}

// validFederationID checks an id chosen by the client in the URL.
func validFederationID(kind, id string) error {
	if id == "" || len(id) > 64 {
		return api.BadRequest("Invalid input for field '%s_id': an id of 1 to 64 characters is required.", kind)
	}
	return nil
}

// Mappings.

type mapping struct {
	ID    string
	Rules json.RawMessage
}

func scanMapping(row store.Scanner) (*mapping, error) {
	m := &mapping{}
	var rules string
	if err := row.Scan(&m.ID, &rules); err != nil {
		return nil, err
	}
	m.Rules = json.RawMessage(rules)
	return m, nil
}

func (s *Service) getMapping(ctx context.Context, id string) (*mapping, error) {
	m, err := store.QueryOne(ctx, s.db, scanMapping, `SELECT id, rules FROM federation_mappings WHERE id = ?`, id)
	return m, err
}

func (s *Service) loadMapping(r *http.Request) (*mapping, error) {
	id := r.PathValue("mapping_id")
	m, err := s.getMapping(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find mapping: %s.", id)
	}
	return m, err
}

func (s *Service) mappingJSON(r *http.Request, m *mapping) map[string]any {
	return map[string]any{"id": m.ID, "rules": m.Rules, "links": s.selfLinks(r, "/v3/OS-FEDERATION/mappings/"+m.ID)}
}

// readMapping reads {"mapping": {"rules": [...]}} and checks the rules'
// structure against Keystone's mapping schema.
func readMapping(r *http.Request) (json.RawMessage, error) {
	var env map[string]json.RawMessage
	if err := api.DecodeJSON(r, &env); err != nil {
		return nil, err
	}
	raw, ok := env["mapping"]
	if !ok || string(raw) == "null" {
		return nil, api.BadRequest("Invalid input for field 'mapping': 'mapping' is a required property.")
	}
	var body any
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, api.BadRequest("Invalid input for field 'mapping': malformed JSON.")
	}
	if err := validateMapping(body); err != nil {
		return nil, err
	}
	rules, _ := json.Marshal(body.(map[string]any)["rules"])
	return rules, nil
}

func (s *Service) createMapping(r *http.Request) (*api.Response, error) {
	id := r.PathValue("mapping_id")
	if err := validFederationID("mapping", id); err != nil {
		return nil, err
	}
	rules, err := readMapping(r)
	if err != nil {
		return nil, err
	}
	_, err = s.db.Exec(r.Context(), `INSERT INTO federation_mappings (id, rules) VALUES (?, ?)`, id, string(rules))
	if store.IsConflict(err) {
		return nil, api.Conflict("Conflict occurred attempting to store mapping - Duplicate entry.")
	}
	if err != nil {
		return nil, fmt.Errorf("create mapping %s: %w", id, err)
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"mapping": s.mappingJSON(r, &mapping{ID: id, Rules: rules})}), nil
}

func (s *Service) listMappings(r *http.Request) (*api.Response, error) {
	mappings, err := store.QueryAll(r.Context(), s.db, scanMapping, `SELECT id, rules FROM federation_mappings ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list mappings: %w", err)
	}
	return listResponse(s, r, "mappings", mappings, s.mappingJSON), nil
}

func (s *Service) showMapping(r *http.Request) (*api.Response, error) {
	m, err := s.loadMapping(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"mapping": s.mappingJSON(r, m)}), nil
}

func (s *Service) updateMapping(r *http.Request) (*api.Response, error) {
	rules, err := readMapping(r)
	if err != nil {
		return nil, err
	}
	m, err := s.loadMapping(r)
	if err != nil {
		return nil, err
	}
	m.Rules = rules
	if _, err := s.db.Exec(r.Context(), `UPDATE federation_mappings SET rules = ? WHERE id = ?`, string(rules), m.ID); err != nil {
		return nil, fmt.Errorf("update mapping %s: %w", m.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"mapping": s.mappingJSON(r, m)}), nil
}

func (s *Service) deleteMapping(r *http.Request) (*api.Response, error) {
	m, err := s.loadMapping(r)
	if err != nil {
		return nil, err
	}
	return s.deleteResource(r.Context(), "mapping", m.ID, `DELETE FROM federation_mappings WHERE id = ?`)
}

// Mapping rule validation, following Keystone's MAPPING_SCHEMA: rules is
// a non-empty list of {"local": [...], "remote": [...]}; each local entry
// may set user, group, groups, group_ids, domain and projects; each remote
// entry is a type with at most one of any_one_of, not_any_of, blacklist
// or whitelist (and regex).

type mappingError struct{ path, msg string }

func (e *mappingError) Error() string { return e.path + ": " + e.msg }

func mapErr(path, format string, args ...any) error {
	return &mappingError{path: path, msg: fmt.Sprintf(format, args...)}
}

func validateMapping(body any) error {
	err := checkMapping(body)
	var me *mappingError
	if errors.As(err, &me) {
		return api.BadRequest("Invalid input for field '%s': %s.", me.path, me.msg)
	}
	return err
}

func checkMapping(body any) error {
	m, ok := body.(map[string]any)
	if !ok {
		return mapErr("mapping", "expected object")
	}
	rules, ok := m["rules"]
	if !ok {
		return mapErr("mapping", "'rules' is a required property")
	}
	list, ok := rules.([]any)
	if !ok {
		return mapErr("mapping.rules", "expected array")
	}
	if len(list) == 0 {
		return mapErr("mapping.rules", "at least one rule is required")
	}
	for i, rule := range list {
		path := fmt.Sprintf("mapping.rules[%d]", i)
		rm, err := object(path, rule, []string{"local", "remote"}, "local", "remote")
		if err != nil {
			return err
		}
		locals, ok := rm["local"].([]any)
		if !ok {
			return mapErr(path+".local", "expected array")
		}
		for j, l := range locals {
			if err := checkLocal(fmt.Sprintf("%s.local[%d]", path, j), l); err != nil {
				return err
			}
		}
		remotes, ok := rm["remote"].([]any)
		if !ok {
			return mapErr(path+".remote", "expected array")
		}
		if len(remotes) == 0 {
			return mapErr(path+".remote", "at least one remote is required")
		}
		for j, rem := range remotes {
			if err := checkRemote(fmt.Sprintf("%s.remote[%d]", path, j), rem); err != nil {
				return err
			}
		}
	}
	return nil
}

// object checks v is an object with only the allowed keys (any keys when
// allowed is nil) and the required ones.
func object(path string, v any, allowed []string, required ...string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, mapErr(path, "expected object")
	}
	if allowed != nil {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !slices.Contains(allowed, k) {
				return nil, mapErr(path, "Additional properties are not allowed ('%s' was unexpected)", k)
			}
		}
	}
	for _, k := range required {
		if _, ok := m[k]; !ok {
			return nil, mapErr(path, "'%s' is a required property", k)
		}
	}
	return m, nil
}

func stringProps(path string, m map[string]any, names ...string) error {
	for _, n := range names {
		if v, ok := m[n]; ok {
			if _, isStr := v.(string); !isStr {
				return mapErr(path+"."+n, "expected string")
			}
		}
	}
	return nil
}

func checkDomainRef(path string, v any) error {
	m, err := object(path, v, []string{"id", "name"})
	if err != nil {
		return err
	}
	return stringProps(path, m, "id", "name")
}

func checkLocal(path string, v any) error {
	m, err := object(path, v, []string{"user", "projects", "group", "groups", "group_ids", "domain"})
	if err != nil {
		return err
	}
	if err := stringProps(path, m, "groups", "group_ids"); err != nil {
		return err
	}
	if d, ok := m["domain"]; ok {
		if err := checkDomainRef(path+".domain", d); err != nil {
			return err
		}
	}
	if u, ok := m["user"]; ok {
		um, err := object(path+".user", u, []string{"id", "name", "email", "domain", "type"})
		if err != nil {
			return err
		}
		if err := stringProps(path+".user", um, "id", "name", "email", "type"); err != nil {
			return err
		}
		if t, ok := um["type"]; ok && t != "ephemeral" && t != "local" {
			return mapErr(path+".user.type", "'%v' is not one of ['ephemeral', 'local']", t)
		}
		if d, ok := um["domain"]; ok {
			if err := checkDomainRef(path+".user.domain", d); err != nil {
				return err
			}
		}
	}
	if g, ok := m["group"]; ok {
		gm, isObj := g.(map[string]any)
		if !isObj {
			return mapErr(path+".group", "expected object")
		}
		byID := len(gm) == 1 && gm["id"] != nil
		_, hasName := gm["name"]
		_, hasDomain := gm["domain"]
		byName := len(gm) == 2 && hasName && hasDomain
		switch {
		case byID:
			if err := stringProps(path+".group", gm, "id"); err != nil {
				return err
			}
		case byName:
			if err := stringProps(path+".group", gm, "name"); err != nil {
				return err
			}
			if err := checkDomainRef(path+".group.domain", gm["domain"]); err != nil {
				return err
			}
		default:
			return mapErr(path+".group", "a group is either {\"id\"} or {\"name\", \"domain\"}")
		}
	}
	if p, ok := m["projects"]; ok {
		list, isList := p.([]any)
		if !isList {
			return mapErr(path+".projects", "expected array")
		}
		for i, pr := range list {
			pp := fmt.Sprintf("%s.projects[%d]", path, i)
			pm, err := object(pp, pr, []string{"name", "roles"}, "name", "roles")
			if err != nil {
				return err
			}
			if err := stringProps(pp, pm, "name"); err != nil {
				return err
			}
			roles, isList := pm["roles"].([]any)
			if !isList {
				return mapErr(pp+".roles", "expected array")
			}
			for j, ro := range roles {
				rp := fmt.Sprintf("%s.roles[%d]", pp, j)
				rm, err := object(rp, ro, nil, "name")
				if err != nil {
					return err
				}
				if err := stringProps(rp, rm, "name"); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// remoteKinds are the matching forms of a remote entry besides a bare type.
var remoteKinds = []string{"any_one_of", "not_any_of", "blacklist", "whitelist"}

func checkRemote(path string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return mapErr(path, "expected object")
	}
	t, ok := m["type"]
	if !ok {
		return mapErr(path, "'type' is a required property")
	}
	if _, isStr := t.(string); !isStr {
		return mapErr(path+".type", "expected string")
	}
	var kinds []string
	for _, k := range remoteKinds {
		if _, ok := m[k]; ok {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) > 1 {
		return mapErr(path, "only one of %s may be given", strings.Join(kinds, ", "))
	}
	allowed := []string{"type"}
	if len(kinds) == 1 {
		allowed = append(allowed, kinds[0], "regex")
		if _, isList := m[kinds[0]].([]any); !isList {
			return mapErr(path+"."+kinds[0], "expected array")
		}
		if re, ok := m["regex"]; ok {
			if _, isBool := re.(bool); !isBool {
				return mapErr(path+".regex", "expected boolean")
			}
		}
	}
	_, err := object(path, m, allowed)
	return err
}

// Identity providers.

type identityProvider struct {
	ID, DomainID     string
	Enabled          bool
	Description      sql.NullString
	AuthorizationTTL sql.NullInt64
	RemoteIDs        []string
}

func (s *Service) getIdP(ctx context.Context, id string) (*identityProvider, error) {
	p := &identityProvider{}
	err := s.db.QueryRow(ctx, `SELECT id, domain_id, enabled, description, authorization_ttl FROM identity_providers WHERE id = ?`, id).
		Scan(&p.ID, &p.DomainID, &p.Enabled, &p.Description, &p.AuthorizationTTL)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	p.RemoteIDs, err = store.QueryStrings(ctx, s.db, `SELECT remote_id FROM idp_remote_ids WHERE idp_id = ? ORDER BY remote_id`, id)
	return p, err
}

func (s *Service) loadIdP(r *http.Request) (*identityProvider, error) {
	id := r.PathValue("idp_id")
	p, err := s.getIdP(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find Identity Provider: %s.", id)
	}
	return p, err
}

func (s *Service) idpJSON(r *http.Request, p *identityProvider) map[string]any {
	self := s.baseURL(r) + "/v3/OS-FEDERATION/identity_providers/" + p.ID
	var ttl any
	if p.AuthorizationTTL.Valid {
		ttl = p.AuthorizationTTL.Int64
	}
	remote := p.RemoteIDs
	if remote == nil {
		remote = []string{}
	}
	return map[string]any{"id": p.ID, "domain_id": p.DomainID, "enabled": p.Enabled, "description": nullString(p.Description),
		"authorization_ttl": ttl, "remote_ids": remote,
		"links": map[string]any{"self": self, "protocols": self + "/protocols"}}
}

type idpBody struct {
	Enabled          api.Optional[bool]     `json:"enabled"`
	Description      api.Optional[string]   `json:"description"`
	DomainID         api.Optional[string]   `json:"domain_id"`
	AuthorizationTTL api.Optional[int64]    `json:"authorization_ttl"`
	RemoteIDs        api.Optional[[]string] `json:"remote_ids"`
}

func (b *idpBody) check() error {
	if b.Enabled.Set && b.Enabled.Null {
		return api.BadRequest("Invalid input for field 'identity_provider.enabled': None is not of type 'boolean'.")
	}
	if b.AuthorizationTTL.Value < 0 {
		return api.BadRequest("Invalid input for field 'identity_provider.authorization_ttl': must be 0 or more.")
	}
	seen := map[string]bool{}
	for _, rid := range b.RemoteIDs.Value {
		if seen[rid] {
			return api.BadRequest("Invalid input for field 'identity_provider.remote_ids': has non-unique elements.")
		}
		seen[rid] = true
	}
	return nil
}

func idpConflict(err error) error {
	if strings.Contains(err.Error(), "remote_id") {
		return api.Conflict("Conflict occurred attempting to store identity_provider - Duplicate remote ID.")
	}
	return api.Conflict("Conflict occurred attempting to store identity_provider - Duplicate entry.")
}

// insertRemoteIDs replaces an identity provider's remote ids.
func insertRemoteIDs(ctx context.Context, tx *store.Tx, idpID string, ids []string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM idp_remote_ids WHERE idp_id = ?`, idpID); err != nil {
		return err
	}
	for _, rid := range ids {
		if _, err := tx.Exec(ctx, `INSERT INTO idp_remote_ids (remote_id, idp_id) VALUES (?, ?)`, rid, idpID); err != nil {
			if store.IsConflict(err) {
				return api.Conflict("Conflict occurred attempting to store identity_provider - Duplicate remote ID: %s.", rid)
			}
			return err
		}
	}
	return nil
}

// createIdP registers an identity provider. Without a domain_id, a domain
// is created for its users, as Keystone does, in the same transaction.
func (s *Service) createIdP(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	id := r.PathValue("idp_id")
	if err := validFederationID("idp", id); err != nil {
		return nil, err
	}
	var b idpBody
	if _, err := readEnvelope(r, "identity_provider", &b, true); err != nil {
		return nil, err
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	p := &identityProvider{ID: id, Enabled: b.Enabled.Value, DomainID: b.DomainID.Value, RemoteIDs: b.RemoteIDs.Value}
	if b.Description.Set && !b.Description.Null {
		p.Description = sql.NullString{String: b.Description.Value, Valid: true}
	}
	if b.AuthorizationTTL.Set && !b.AuthorizationTTL.Null {
		p.AuthorizationTTL = sql.NullInt64{Int64: b.AuthorizationTTL.Value, Valid: true}
	}
	autoDomain := p.DomainID == ""
	if autoDomain {
		p.DomainID = newID()
	} else if _, err := s.getDomain(ctx, s.db, p.DomainID); errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find domain: %s.", p.DomainID)
	} else if err != nil {
		return nil, err
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if autoDomain {
			if _, err := tx.Exec(ctx, `INSERT INTO projects (id, name, domain_id, description, enabled, is_domain, extra) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				p.DomainID, p.DomainID, rootDomainID, "Auto generated federated domain for Identity Provider: "+id, true, true, "{}"); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO identity_providers (id, domain_id, enabled, description, authorization_ttl) VALUES (?, ?, ?, ?, ?)`,
			p.ID, p.DomainID, p.Enabled, p.Description, p.AuthorizationTTL); err != nil {
			return err
		}
		return insertRemoteIDs(ctx, tx, p.ID, p.RemoteIDs)
	})
	if err != nil {
		if isAPIError(err) {
			return nil, err
		}
		if store.IsConflict(err) {
			return nil, idpConflict(err)
		}
		return nil, fmt.Errorf("create identity provider %s: %w", id, err)
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"identity_provider": s.idpJSON(r, p)}), nil
}

func (s *Service) listIdPs(r *http.Request) (*api.Response, error) {
	where, args := []string{"1 = 1"}, []any{}
	if id := r.URL.Query().Get("id"); id != "" {
		where, args = append(where, "id = ?"), append(args, id)
	}
	if v, ok := queryBool(r, "enabled"); ok {
		where, args = append(where, "enabled = ?"), append(args, v)
	}
	ids, err := store.QueryStrings(r.Context(), s.db, `SELECT id FROM identity_providers WHERE `+strings.Join(where, " AND ")+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list identity providers: %w", err)
	}
	out := []any{}
	for _, id := range ids {
		p, err := s.getIdP(r.Context(), id)
		if err != nil {
			continue
		}
		out = append(out, s.idpJSON(r, p))
	}
	return api.JSON(http.StatusOK, s.listBody(r, "identity_providers", out)), nil
}

func (s *Service) showIdP(r *http.Request) (*api.Response, error) {
	p, err := s.loadIdP(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"identity_provider": s.idpJSON(r, p)}), nil
}

func (s *Service) updateIdP(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b idpBody
	if _, err := readEnvelope(r, "identity_provider", &b, true); err != nil {
		return nil, err
	}
	if b.DomainID.Set {
		return nil, api.BadRequest("Invalid input for field 'identity_provider.domain_id': Additional properties are not allowed ('domain_id' was unexpected).")
	}
	if !b.Enabled.Set && !b.Description.Set && !b.AuthorizationTTL.Set && !b.RemoteIDs.Set {
		return nil, api.BadRequest("Invalid input for field 'identity_provider': at least one property is required.")
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	p, err := s.loadIdP(r)
	if err != nil {
		return nil, err
	}
	if b.Enabled.Set {
		p.Enabled = b.Enabled.Value
	}
	if b.Description.Set {
		p.Description = sql.NullString{String: b.Description.Value, Valid: !b.Description.Null}
	}
	if b.AuthorizationTTL.Set {
		p.AuthorizationTTL = sql.NullInt64{Int64: b.AuthorizationTTL.Value, Valid: !b.AuthorizationTTL.Null}
	}
	if b.RemoteIDs.Set {
		p.RemoteIDs = b.RemoteIDs.Value
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE identity_providers SET enabled = ?, description = ?, authorization_ttl = ? WHERE id = ?`,
			p.Enabled, p.Description, p.AuthorizationTTL, p.ID); err != nil {
			return err
		}
		if b.RemoteIDs.Set {
			return insertRemoteIDs(ctx, tx, p.ID, p.RemoteIDs)
		}
		return nil
	})
	if err != nil {
		if isAPIError(err) {
			return nil, err
		}
		return nil, fmt.Errorf("update identity provider %s: %w", p.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"identity_provider": s.idpJSON(r, p)}), nil
}

func (s *Service) deleteIdP(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	p, err := s.loadIdP(r)
	if err != nil {
		return nil, err
	}
	return s.deleteResource(ctx, "identity provider", p.ID,
		`DELETE FROM federation_protocols WHERE idp_id = ?`,
		`DELETE FROM idp_remote_ids WHERE idp_id = ?`,
		`DELETE FROM identity_providers WHERE id = ?`)
}

// Protocols.

type protocol struct {
	ID, IdPID, MappingID string
	RemoteIDAttribute    sql.NullString
}

func (s *Service) protocolJSON(r *http.Request, p *protocol) map[string]any {
	idp := s.baseURL(r) + "/v3/OS-FEDERATION/identity_providers/" + p.IdPID
	out := map[string]any{"id": p.ID, "mapping_id": p.MappingID,
		"links": map[string]any{"self": idp + "/protocols/" + p.ID, "identity_provider": idp}}
	if p.RemoteIDAttribute.Valid {
		out["remote_id_attribute"] = p.RemoteIDAttribute.String
	}
	return out
}

const protocolColumns = `id, idp_id, mapping_id, remote_id_attribute`

func scanProtocol(row store.Scanner) (*protocol, error) {
	p := &protocol{}
	if err := row.Scan(&p.ID, &p.IdPID, &p.MappingID, &p.RemoteIDAttribute); err != nil {
		return nil, err
	}
	return p, nil
}

func (s *Service) loadProtocol(r *http.Request) (*protocol, error) {
	idp, id := r.PathValue("idp_id"), r.PathValue("protocol_id")
	p, err := scanProtocol(s.db.QueryRow(r.Context(), `SELECT `+protocolColumns+` FROM federation_protocols WHERE idp_id = ? AND id = ?`, idp, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, api.NotFound("Could not find federated protocol %s for Identity Provider: %s.", id, idp)
	}
	return p, err
}

type protocolBody struct {
	MappingID         api.Optional[string] `json:"mapping_id"`
	RemoteIDAttribute api.Optional[string] `json:"remote_id_attribute"`
}

// check validates a protocol body; the mapping must exist.
func (s *Service) checkProtocolBody(ctx context.Context, b *protocolBody, create bool) error {
	if create && (!b.MappingID.Set || b.MappingID.Null) {
		return api.BadRequest("Invalid input for field 'protocol.mapping_id': 'mapping_id' is a required property.")
	}
	if !create && !b.MappingID.Set && !b.RemoteIDAttribute.Set {
		return api.BadRequest("Invalid input for field 'protocol': at least one property is required.")
	}
	if len(b.RemoteIDAttribute.Value) > 64 {
		return api.BadRequest("Invalid input for field 'protocol.remote_id_attribute': longer than 64 characters.")
	}
	if b.MappingID.Set {
		if b.MappingID.Null || b.MappingID.Value == "" {
			return api.BadRequest("Invalid input for field 'protocol.mapping_id': a mapping id is required.")
		}
		if _, err := s.getMapping(ctx, b.MappingID.Value); errors.Is(err, store.ErrNotFound) {
			return api.BadRequest("Invalid mapping id: %s", b.MappingID.Value)
		} else if err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) createProtocol(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	id := r.PathValue("protocol_id")
	if err := validFederationID("protocol", id); err != nil {
		return nil, err
	}
	var b protocolBody
	if _, err := readEnvelope(r, "protocol", &b, true); err != nil {
		return nil, err
	}
	if err := s.checkProtocolBody(ctx, &b, true); err != nil {
		return nil, err
	}
	idp, err := s.loadIdP(r)
	if err != nil {
		return nil, err
	}
	p := &protocol{ID: id, IdPID: idp.ID, MappingID: b.MappingID.Value}
	if b.RemoteIDAttribute.Set && !b.RemoteIDAttribute.Null {
		p.RemoteIDAttribute = sql.NullString{String: b.RemoteIDAttribute.Value, Valid: true}
	}
	_, err = s.db.Exec(ctx, `INSERT INTO federation_protocols (id, idp_id, mapping_id, remote_id_attribute) VALUES (?, ?, ?, ?)`,
		p.ID, p.IdPID, p.MappingID, p.RemoteIDAttribute)
	if store.IsConflict(err) {
		return nil, api.Conflict("Conflict occurred attempting to store federation_protocol - Duplicate entry.")
	}
	if err != nil {
		return nil, fmt.Errorf("create protocol %s: %w", id, err)
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"protocol": s.protocolJSON(r, p)}), nil
}

func (s *Service) listProtocols(r *http.Request) (*api.Response, error) {
	idp, err := s.loadIdP(r)
	if err != nil {
		return nil, err
	}
	protocols, err := store.QueryAll(r.Context(), s.db, scanProtocol, `SELECT `+protocolColumns+` FROM federation_protocols WHERE idp_id = ? ORDER BY id`, idp.ID)
	if err != nil {
		return nil, fmt.Errorf("list protocols of %s: %w", idp.ID, err)
	}
	return listResponse(s, r, "protocols", protocols, s.protocolJSON), nil
}

func (s *Service) showProtocol(r *http.Request) (*api.Response, error) {
	p, err := s.loadProtocol(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"protocol": s.protocolJSON(r, p)}), nil
}

func (s *Service) updateProtocol(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	var b protocolBody
	if _, err := readEnvelope(r, "protocol", &b, true); err != nil {
		return nil, err
	}
	if err := s.checkProtocolBody(ctx, &b, false); err != nil {
		return nil, err
	}
	p, err := s.loadProtocol(r)
	if err != nil {
		return nil, err
	}
	if b.MappingID.Set {
		p.MappingID = b.MappingID.Value
	}
	if b.RemoteIDAttribute.Set {
		p.RemoteIDAttribute = sql.NullString{String: b.RemoteIDAttribute.Value, Valid: !b.RemoteIDAttribute.Null}
	}
	if _, err := s.db.Exec(ctx, `UPDATE federation_protocols SET mapping_id = ?, remote_id_attribute = ? WHERE idp_id = ? AND id = ?`,
		p.MappingID, p.RemoteIDAttribute, p.IdPID, p.ID); err != nil {
		return nil, fmt.Errorf("update protocol %s: %w", p.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"protocol": s.protocolJSON(r, p)}), nil
}

func (s *Service) deleteProtocol(r *http.Request) (*api.Response, error) {
	p, err := s.loadProtocol(r)
	if err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(r.Context(), `DELETE FROM federation_protocols WHERE idp_id = ? AND id = ?`, p.IdPID, p.ID); err != nil {
		return nil, fmt.Errorf("delete protocol %s: %w", p.ID, err)
	}
	s.changed()
	return api.NoContent(), nil
}
