package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Domain-specific configuration (/v3/domains/{domain_id}/config): the
// identity and ldap options a domain overrides, as Keystone keeps them
// for domain-specific identity drivers. Only the options Keystone allows
// may be stored; sensitive ones (the LDAP bind password) are stored
// encrypted and never returned.

// domainConfigOptions are the options a domain may set, with Keystone's
// defaults, by group.
var domainConfigOptions = map[string]map[string]any{
	"identity": {"driver": "sql", "list_limit": nil},
	"ldap": {
		"url": "ldap://localhost", "user": nil, "suffix": "cn=example,cn=com", "query_scope": "one",
		"page_size": 0, "alias_dereferencing": "default", "debug_level": nil, "chase_referrals": nil,
		"user_tree_dn": nil, "user_filter": nil, "user_objectclass": "inetOrgPerson",
		"user_id_attribute": "cn", "user_name_attribute": "sn", "user_mail_attribute": "mail",
		"user_description_attribute": "description", "user_pass_attribute": "userPassword",
		"user_enabled_attribute": "enabled", "user_enabled_invert": false, "user_enabled_mask": 0,
		"user_enabled_default": "True", "user_attribute_ignore": []any{"default_project_id"},
		"user_default_project_id_attribute": nil, "user_enabled_emulation": false,
		"user_enabled_emulation_dn": nil, "user_enabled_emulation_use_group_config": false,
		"user_additional_attribute_mapping": []any{}, "group_tree_dn": nil, "group_filter": nil,
		"group_objectclass": "groupOfNames", "group_id_attribute": "cn", "group_name_attribute": "ou",
		"group_members_are_ids": false, "group_member_attribute": "member",
		"group_desc_attribute": "description", "group_attribute_ignore": []any{},
		"group_additional_attribute_mapping": []any{}, "tls_cacertfile": nil, "tls_cacertdir": nil,
		"use_tls": false, "tls_req_cert": "demand", "use_pool": true, "pool_size": 10,
		"pool_retry_max": 3, "pool_retry_delay": 0.1, "pool_connection_timeout": -1,
		"pool_connection_lifetime": 600, "use_auth_pool": true, "auth_pool_size": 100,
		"auth_pool_connection_lifetime": 60,
	},
}

// sensitiveConfigOptions are write-only options.
var sensitiveConfigOptions = map[string][]string{"identity": {}, "ldap": {"password"}}

// securityComplianceOptions are the readable security_compliance options;
// Nimbus has no password regex configured, so they read as null.
var securityComplianceOptions = []string{"password_regex", "password_regex_description"}

func invalidDomainConfig(format string, args ...any) error {
	return api.Forbidden("Invalid domain specific configuration: %s.", fmt.Sprintf(format, args...))
}

func isSensitive(group, option string) bool {
	return slices.Contains(sensitiveConfigOptions[group], option)
}

// validGroupOption checks that a group and (optional) option may be
// configured per domain.
func validGroupOption(group, option string) error {
	opts, ok := domainConfigOptions[group]
	if group != "" && !ok {
		return invalidDomainConfig("Group %s is not supported for domain specific configurations", group)
	}
	if option != "" {
		if _, ok := opts[option]; !ok && !isSensitive(group, option) {
			return invalidDomainConfig("Option %s in group %s is not supported for domain specific configurations", option, group)
		}
	}
	return nil
}

// configOption is one stored option.
type configOption struct {
	Group, Option string
	Value         any
	Sensitive     bool
}

func (s *Service) configOptions(ctx context.Context, q store.Querier, domainID, group, option string, sensitive bool) ([]configOption, error) {
	where, args := `domain_id = ? AND sensitive = ?`, []any{domainID, sensitive}
	if group != "" {
		where, args = where+` AND config_group = ?`, append(args, group)
	}
	if option != "" {
		where, args = where+` AND config_option = ?`, append(args, option)
	}
	out, err := store.QueryAll(ctx, q, func(row store.Scanner) (configOption, error) {
		o := configOption{Sensitive: sensitive}
		var raw string
		if err := row.Scan(&o.Group, &o.Option, &raw); err != nil {
			return o, err
		}
		if !sensitive {
			if err := json.Unmarshal([]byte(raw), &o.Value); err != nil {
				return o, fmt.Errorf("domain config %s.%s: %w", o.Group, o.Option, err)
			}
		}
		return o, nil
	}, `SELECT config_group, config_option, value FROM domain_configs WHERE `+where+` ORDER BY config_group, config_option`, args...)
	if err != nil {
		return nil, fmt.Errorf("read domain config: %w", err)
	}
	return out, nil
}

// configDict renders options as {"group": {"option": value}}, or just
// {"option": value} when one option was asked for.
func configDict(opts []configOption, option string) map[string]any {
	if option != "" && len(opts) == 1 {
		return map[string]any{opts[0].Option: opts[0].Value}
	}
	out := map[string]any{}
	for _, o := range opts {
		g, _ := out[o.Group].(map[string]any)
		if g == nil {
			g = map[string]any{}
			out[o.Group] = g
		}
		g[o.Option] = o.Value
	}
	return out
}

func configNotFound(domainID, group, option string) error {
	what := "any options"
	switch {
	case option != "":
		what = fmt.Sprintf("option %s in group %s", option, group)
	case group != "":
		what = "group " + group
	}
	return api.NotFound("Could not find %s in domain configuration for domain %s.", what, domainID)
}

// readConfigBody reads {"config": {...}}: for a whole config or a group,
// groups of options; for one option, the option alone.
func readConfigBody(r *http.Request, group, option string) (map[string]map[string]json.RawMessage, error) {
	var env map[string]json.RawMessage
	if err := api.DecodeJSON(r, &env); err != nil {
		return nil, err
	}
	raw, ok := env["config"]
	if !ok || string(raw) == "null" {
		return nil, api.BadRequest("Invalid input for field 'config': 'config' is a required property.")
	}
	var flat map[string]json.RawMessage
	if err := json.Unmarshal(raw, &flat); err != nil {
		return nil, api.BadRequest("Invalid input for field 'config': expected object.")
	}
	if len(flat) == 0 {
		return nil, invalidDomainConfig("No options specified")
	}
	if option != "" {
		return map[string]map[string]json.RawMessage{group: flat}, nil
	}
	out := map[string]map[string]json.RawMessage{}
	for g, opts := range flat {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(opts, &m); err != nil || len(m) == 0 {
			return nil, invalidDomainConfig("The value of group %s specified in the config should be a dictionary of options", g)
		}
		out[g] = m
	}
	return out, nil
}

func validConfig(cfg map[string]map[string]json.RawMessage) error {
	for g, opts := range cfg {
		if err := validGroupOption(g, ""); err != nil {
			return err
		}
		for o := range opts {
			if err := validGroupOption(g, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// upsertConfig writes options, sealing sensitive values.
func (s *Service) upsertConfig(ctx context.Context, tx *store.Tx, domainID string, cfg map[string]map[string]json.RawMessage) error {
	for g, opts := range cfg {
		for o, raw := range opts {
			value, sensitive := string(raw), isSensitive(g, o)
			if sensitive {
				var err error
				if value, err = s.sealSecret(value); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, `DELETE FROM domain_configs WHERE domain_id = ? AND config_group = ? AND config_option = ?`, domainID, g, o); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO domain_configs (domain_id, config_group, config_option, value, sensitive) VALUES (?, ?, ?, ?, ?)`,
				domainID, g, o, value, sensitive); err != nil {
				return err
			}
		}
	}
	return nil
}

// configTarget loads the path's domain after checking action, so that a
// caller without the right cannot probe for domains.
func (s *Service) configTarget(r *http.Request, action, domainID string) (*project, error) {
	if err := s.api.Authorize(r, action, map[string]any{"domain_id": domainID, "target": map[string]any{"domain": map[string]any{"id": domainID}}}); err != nil {
		return nil, err
	}
	d, err := s.getDomain(r.Context(), s.db, domainID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find domain: %s.", domainID)
	}
	return d, err
}

func (s *Service) domainConfigRoutes(rt *api.Router) {
	type R = api.Route
	// Keystone's URLs for defaults, /v3/domains/config/{group}/default,
	// overlap /v3/domains/{domain_id}/config/{group} ("config" could be a
	// domain id), which ServeMux refuses to register side by side. The
	// group and option URLs are therefore served by one wider pattern that
	// tells the two apart.
	rt.Handle(
		R{Method: http.MethodPut, Pattern: "/v3/domains/{domain_id}/config", Handler: s.createDomainConfig},
		R{Method: http.MethodGet, Pattern: "/v3/domains/{domain_id}/config", Handler: s.domainConfigHandler(http.MethodGet)},
		R{Method: http.MethodPatch, Pattern: "/v3/domains/{domain_id}/config", Handler: s.domainConfigHandler(http.MethodPatch)},
		R{Method: http.MethodDelete, Pattern: "/v3/domains/{domain_id}/config", Handler: s.domainConfigHandler(http.MethodDelete)},
		R{Method: http.MethodGet, Pattern: "/v3/domains/config/default", Handler: s.showDefaultConfig},
	)
	for _, pattern := range []string{"/v3/domains/{domain_id}/{sub}/{group}", "/v3/domains/{domain_id}/{sub}/{group}/{option}"} {
		for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodDelete} {
			rt.Handle(R{Method: m, Pattern: pattern, Handler: s.domainConfigHandler(m)})
		}
	}
}

// configPath is what a domain config URL names.
type configPath struct {
	DomainID, Group, Option string
	Default                 bool // /v3/domains/config/{group}[/{option}]/default
}

// parseConfigPath tells /v3/domains/{id}/config/{group}[/{option}] from
// /v3/domains/config/{group}[/{option}]/default.
func parseConfigPath(r *http.Request) (configPath, bool) {
	d, sub, g, o := r.PathValue("domain_id"), r.PathValue("sub"), r.PathValue("group"), r.PathValue("option")
	switch {
	case sub == "":
		return configPath{DomainID: d}, true
	case d == "config" && (o == "" && g == "default" || o == "default"):
		if o == "" {
			return configPath{Group: sub, Default: true}, true
		}
		return configPath{Group: sub, Option: g, Default: true}, true
	case sub == "config":
		return configPath{DomainID: d, Group: g, Option: o}, true
	}
	return configPath{}, false
}

func (s *Service) domainConfigHandler(method string) api.HandlerFunc {
	return func(r *http.Request) (*api.Response, error) {
		p, ok := parseConfigPath(r)
		if !ok {
			return nil, api.NotFound("The resource could not be found.")
		}
		if p.Default {
			if method != http.MethodGet {
				e := api.Errorf(http.StatusMethodNotAllowed, "The method %s is not allowed for this resource.", r.Method)
				e.Header = http.Header{"Allow": {"GET, HEAD"}}
				return nil, e
			}
			return s.defaultConfig(r, p.Group, p.Option)
		}
		switch method {
		case http.MethodGet:
			return s.showDomainConfig(r, p)
		case http.MethodPatch:
			return s.updateDomainConfig(r, p)
		default:
			return s.deleteDomainConfig(r, p)
		}
	}
}

func (s *Service) createDomainConfig(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	d, err := s.configTarget(r, "identity:create_domain_config", r.PathValue("domain_id"))
	if err != nil {
		return nil, err
	}
	cfg, err := readConfigBody(r, "", "")
	if err != nil {
		return nil, err
	}
	if err := validConfig(cfg); err != nil {
		return nil, err
	}
	existed := false
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM domain_configs WHERE domain_id = ?`, d.ID).Scan(&n); err != nil {
			return err
		}
		existed = n > 0
		// PUT replaces the whole configuration.
		if _, err := tx.Exec(ctx, `DELETE FROM domain_configs WHERE domain_id = ?`, d.ID); err != nil {
			return err
		}
		return s.upsertConfig(ctx, tx, d.ID, cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("create config of domain %s: %w", d.ID, err)
	}
	s.changed()
	opts, err := s.configOptions(ctx, s.db, d.ID, "", "", false)
	if err != nil {
		return nil, err
	}
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	return api.JSON(status, map[string]any{"config": configDict(opts, "")}), nil
}

func (s *Service) showDomainConfig(r *http.Request, p configPath) (*api.Response, error) {
	if p.Group == "security_compliance" {
		return s.securityComplianceConfig(r, p)
	}
	d, err := s.configTarget(r, "identity:get_domain_config", p.DomainID)
	if err != nil {
		return nil, err
	}
	if err := validGroupOption(p.Group, p.Option); err != nil {
		return nil, err
	}
	opts, err := s.configOptions(r.Context(), s.db, d.ID, p.Group, p.Option, false)
	if err != nil {
		return nil, err
	}
	if len(opts) == 0 {
		return nil, configNotFound(d.ID, p.Group, p.Option)
	}
	return api.JSON(http.StatusOK, map[string]any{"config": configDict(opts, p.Option)}), nil
}

// securityComplianceConfig reads the password rules users of the default
// domain are held to.
func (s *Service) securityComplianceConfig(r *http.Request, p configPath) (*api.Response, error) {
	if _, err := s.configTarget(r, "identity:get_security_compliance_domain_config", p.DomainID); err != nil {
		return nil, err
	}
	if p.DomainID != DefaultDomainID {
		return nil, invalidDomainConfig("Reading security compliance information for any domain other than the default domain is not allowed or supported.")
	}
	if p.Option != "" {
		if !slices.Contains(securityComplianceOptions, p.Option) {
			return nil, invalidDomainConfig("Reading security compliance values other than password_regex and password_regex_description is not allowed.")
		}
		return api.JSON(http.StatusOK, map[string]any{"config": map[string]any{p.Option: nil}}), nil
	}
	group := map[string]any{}
	for _, o := range securityComplianceOptions {
		group[o] = nil
	}
	return api.JSON(http.StatusOK, map[string]any{"config": map[string]any{"security_compliance": group}}), nil
}

func (s *Service) updateDomainConfig(r *http.Request, p configPath) (*api.Response, error) {
	ctx := r.Context()
	d, err := s.configTarget(r, "identity:update_domain_config", p.DomainID)
	if err != nil {
		return nil, err
	}
	if err := validGroupOption(p.Group, p.Option); err != nil {
		return nil, err
	}
	cfg, err := readConfigBody(r, p.Group, p.Option)
	if err != nil {
		return nil, err
	}
	if err := validConfig(cfg); err != nil {
		return nil, err
	}
	if p.Group != "" {
		// Updating a group or option touches that, and only that, which
		// must already be there.
		if _, ok := cfg[p.Group]; !ok || len(cfg) != 1 {
			return nil, invalidDomainConfig("Trying to update group %s, so that, and only that, group must be specified in the config", p.Group)
		}
		if p.Option != "" {
			if _, ok := cfg[p.Group][p.Option]; !ok || len(cfg[p.Group]) != 1 {
				return nil, invalidDomainConfig("Trying to update option %s in group %s, so that, and only that, option must be specified  in the config", p.Option, p.Group)
			}
		}
		exists, err := s.configExists(ctx, d.ID, p.Group, p.Option)
		if err != nil {
			return nil, err
		}
		if !exists {
			return nil, configNotFound(d.ID, p.Group, p.Option)
		}
	}
	if err := s.db.InTx(ctx, func(tx *store.Tx) error { return s.upsertConfig(ctx, tx, d.ID, cfg) }); err != nil {
		return nil, fmt.Errorf("update config of domain %s: %w", d.ID, err)
	}
	s.changed()
	opts, err := s.configOptions(ctx, s.db, d.ID, "", "", false)
	if err != nil {
		return nil, err
	}
	if len(opts) == 0 {
		return nil, configNotFound(d.ID, "", "")
	}
	return api.JSON(http.StatusOK, map[string]any{"config": configDict(opts, "")}), nil
}

// configExists reports whether a group (or option) has any stored value,
// sensitive ones included.
func (s *Service) configExists(ctx context.Context, domainID, group, option string) (bool, error) {
	q, args := `SELECT COUNT(*) FROM domain_configs WHERE domain_id = ? AND config_group = ?`, []any{domainID, group}
	if option != "" {
		q, args = q+` AND config_option = ?`, append(args, option)
	}
	var n int
	err := s.db.QueryRow(ctx, q, args...).Scan(&n)
	return n > 0, err
}

func (s *Service) deleteDomainConfig(r *http.Request, p configPath) (*api.Response, error) {
	ctx := r.Context()
	d, err := s.configTarget(r, "identity:delete_domain_config", p.DomainID)
	if err != nil {
		return nil, err
	}
	if err := validGroupOption(p.Group, p.Option); err != nil {
		return nil, err
	}
	q, args := `DELETE FROM domain_configs WHERE domain_id = ?`, []any{d.ID}
	if p.Group != "" {
		exists, err := s.configExists(ctx, d.ID, p.Group, p.Option)
		if err != nil {
			return nil, err
		}
		if !exists {
			return nil, configNotFound(d.ID, p.Group, p.Option)
		}
		q, args = q+` AND config_group = ?`, append(args, p.Group)
		if p.Option != "" {
			q, args = q+` AND config_option = ?`, append(args, p.Option)
		}
	}
	if _, err := s.db.Exec(ctx, q, args...); err != nil {
		return nil, fmt.Errorf("delete config of domain %s: %w", d.ID, err)
	}
	s.changed()
	return api.NoContent(), nil
}

func (s *Service) showDefaultConfig(r *http.Request) (*api.Response, error) {
	return s.defaultConfig(r, "", "")
}

// defaultConfig shows the values a domain without its own config uses.
func (s *Service) defaultConfig(r *http.Request, group, option string) (*api.Response, error) {
	if err := s.api.Authorize(r, "identity:get_domain_config_default", map[string]any{}); err != nil {
		return nil, err
	}
	if err := validGroupOption(group, option); err != nil {
		return nil, err
	}
	if option != "" {
		v, ok := domainConfigOptions[group][option]
		if !ok {
			return nil, invalidDomainConfig("Reading the default for option %s in group %s is not supported", option, group)
		}
		return api.JSON(http.StatusOK, map[string]any{"config": map[string]any{option: v}}), nil
	}
	out := map[string]any{}
	for g, opts := range domainConfigOptions {
		if group == "" || g == group {
			out[g] = opts
		}
	}
	return api.JSON(http.StatusOK, map[string]any{"config": out}), nil
}
