package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Version is the Swift API version the proxy reports in /info; clients
// such as python-swiftclient compare it to enable features.
const Version = "2.34.0"

// info answers GET /info, Swift's capability discovery: the constraints
// under "swift" and one section per middleware in the pipeline. It needs
// no token.
func (p *Proxy) info(q *request) error {
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		return methodNotAllowed("GET, HEAD")
	}
	c := p.cfg.Constraints
	swift := map[string]any{
		"version":                   Version,
		"max_file_size":             c.MaxFileSize,
		"max_meta_name_length":      c.MaxMetaNameLength,
		"max_meta_value_length":     c.MaxMetaValueLength,
		"max_meta_count":            c.MaxMetaCount,
		"max_meta_overall_size":     c.MaxMetaOverallSize,
		"max_header_size":           c.MaxHeaderSize,
		"max_object_name_length":    c.MaxObjectNameLength,
		"container_listing_limit":   c.ContainerListingLimit,
		"account_listing_limit":     c.AccountListingLimit,
		"max_account_name_length":   c.MaxAccountNameLength,
		"max_container_name_length": c.MaxContainerNameLength,
		"extra_header_count":        0,
		"account_autocreate":        !p.cfg.DisableAccountAutocreate,
		"allow_account_management":  p.cfg.AllowAccountManagement,
		"strict_cors_mode":          true,
		"valid_api_versions":        []string{"v1", "v1.0"},
		"policies":                  p.cfg.Policies.Info(),
	}
	sections := p.cfg.Middlewares.info()
	sections["swift"] = swift
	sections["keystoneauth"] = map[string]any{}
	sections["dlo"] = map[string]any{"max_get_time": 86400}
	if !p.cfg.Middlewares.DisableContainerSync {
		sections["container_sync"] = p.syncInfo()
	}
	body, err := json.Marshal(sections)
	if err != nil {
		return fmt.Errorf("encode /info: %w", err)
	}
	writeBody(q.w, q.r, http.StatusOK, "application/json; charset=UTF-8", string(body))
	return nil
}
