package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Policies (/v3/policies) are Keystone's legacy store of policy blobs that
// services could fetch: opaque text with a MIME type. They are kept and
// served, never enforced; enforcement uses the policy file.

func (s *Service) policyRoutes(rt *api.Router) {
	type R = api.Route
	rt.Handle(
		R{Method: http.MethodPost, Pattern: "/v3/policies", Handler: s.createPolicy, Policy: "identity:create_policy"},
		R{Method: http.MethodGet, Pattern: "/v3/policies", Handler: s.listPolicies, Policy: "identity:list_policies"},
		R{Method: http.MethodGet, Pattern: "/v3/policies/{policy_id}", Handler: s.showPolicy, Policy: "identity:get_policy"},
		R{Method: http.MethodPatch, Pattern: "/v3/policies/{policy_id}", Handler: s.updatePolicy, Policy: "identity:update_policy"},
		R{Method: http.MethodDelete, Pattern: "/v3/policies/{policy_id}", Handler: s.deletePolicy, Policy: "identity:delete_policy"},
	)
}

type policyBlob struct {
	ID, Type, Blob, Extra string
}

const policyBlobColumns = `id, type, blob, extra`

func scanPolicyBlob(row store.Scanner) (*policyBlob, error) {
	p := &policyBlob{}
	if err := row.Scan(&p.ID, &p.Type, &p.Blob, &p.Extra); err != nil {
		return nil, err
	}
	return p, nil
}

func (s *Service) getPolicyBlob(ctx context.Context, id string) (*policyBlob, error) {
	p, err := store.QueryOne(ctx, s.db, scanPolicyBlob, `SELECT `+policyBlobColumns+` FROM policies WHERE id = ?`, id)
	return p, err
}

func (s *Service) loadPolicyBlob(r *http.Request) (*policyBlob, error) {
	id := r.PathValue("policy_id")
	p, err := s.getPolicyBlob(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("Could not find policy: %s.", id)
	}
	return p, err
}

func (s *Service) policyJSON(r *http.Request, p *policyBlob) map[string]any {
	return withExtra(map[string]any{"id": p.ID, "type": p.Type, "blob": p.Blob,
		"links": s.selfLinks(r, "/v3/policies/"+p.ID)}, p.Extra)
}

type policyBody struct {
	Type api.Optional[string] `json:"type"`
	Blob api.Optional[string] `json:"blob"`
}

func validPolicyType(t api.Optional[string]) error {
	if t.Null || t.Value == "" || len(t.Value) > 255 {
		return api.BadRequest("Invalid input for field 'policy.type': a type of 1 to 255 characters is required.")
	}
	return nil
}

func (s *Service) createPolicy(r *http.Request) (*api.Response, error) {
	var b policyBody
	extra, err := readEnvelope(r, "policy", &b, false)
	if err != nil {
		return nil, err
	}
	if !b.Blob.Set || b.Blob.Null {
		return nil, api.BadRequest("Invalid input for field 'policy.blob': 'blob' is a required property.")
	}
	if !b.Type.Set {
		return nil, api.BadRequest("Invalid input for field 'policy.type': 'type' is a required property.")
	}
	if err := validPolicyType(b.Type); err != nil {
		return nil, err
	}
	p := &policyBlob{ID: newID(), Type: b.Type.Value, Blob: b.Blob.Value, Extra: encodeExtra(extra)}
	if _, err := s.db.Exec(r.Context(), `INSERT INTO policies (id, type, blob, extra) VALUES (?, ?, ?, ?)`, p.ID, p.Type, p.Blob, p.Extra); err != nil {
		return nil, fmt.Errorf("create policy: %w", err)
	}
	s.changed()
	return api.JSON(http.StatusCreated, map[string]any{"policy": s.policyJSON(r, p)}), nil
}

func (s *Service) listPolicies(r *http.Request) (*api.Response, error) {
	q, args := `SELECT `+policyBlobColumns+` FROM policies`, []any{}
	if t := r.URL.Query().Get("type"); t != "" {
		q, args = q+` WHERE type = ?`, append(args, t)
	}
	policies, err := store.QueryAll(r.Context(), s.db, scanPolicyBlob, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return listResponse(s, r, "policies", policies, s.policyJSON), nil
}

func (s *Service) showPolicy(r *http.Request) (*api.Response, error) {
	p, err := s.loadPolicyBlob(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"policy": s.policyJSON(r, p)}), nil
}

func (s *Service) updatePolicy(r *http.Request) (*api.Response, error) {
	var b policyBody
	extra, err := readEnvelope(r, "policy", &b, false)
	if err != nil {
		return nil, err
	}
	if !b.Type.Set && !b.Blob.Set && len(extra) == 0 {
		return nil, api.BadRequest("Invalid input for field 'policy': at least one property is required.")
	}
	p, err := s.loadPolicyBlob(r)
	if err != nil {
		return nil, err
	}
	if b.Type.Set {
		if err := validPolicyType(b.Type); err != nil {
			return nil, err
		}
		p.Type = b.Type.Value
	}
	if b.Blob.Set {
		if b.Blob.Null {
			return nil, api.BadRequest("Invalid input for field 'policy.blob': None is not of type 'string'.")
		}
		p.Blob = b.Blob.Value
	}
	p.Extra = mergeExtra(p.Extra, extra)
	if _, err := s.db.Exec(r.Context(), `UPDATE policies SET type = ?, blob = ?, extra = ? WHERE id = ?`, p.Type, p.Blob, p.Extra, p.ID); err != nil {
		return nil, fmt.Errorf("update policy %s: %w", p.ID, err)
	}
	s.changed()
	return api.JSON(http.StatusOK, map[string]any{"policy": s.policyJSON(r, p)}), nil
}

func (s *Service) deletePolicy(r *http.Request) (*api.Response, error) {
	p, err := s.loadPolicyBlob(r)
	if err != nil {
		return nil, err
	}
	return s.deleteResource(r.Context(), "policy", p.ID, `DELETE FROM policies WHERE id = ?`)
}
