package network

import (
	"errors"
	"net/http"
	"net/netip"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// The metering API keeps labels and their rules; the data plane counts
// the traffic they select on each router.
var meteringExtensions = []extension{
	{"metering", "Neutron Metering", "Neutron Metering extension.", "2013-06-12T10:00:00-00:00"},
}

type meteringLabel struct {
	ID, ProjectID, Name, Description string
	Shared                           bool
}

type meteringRule struct {
	ID, ProjectID, LabelID, Direction, RemoteIPPrefix string
	Excluded                                          bool
}

func scanLabel(row store.Scanner) (*meteringLabel, error) {
	var l meteringLabel
	var shared int
	err := row.Scan(&l.ID, &l.ProjectID, &l.Name, &l.Description, &shared)
	l.Shared = shared != 0
	return &l, err
}

func scanMeteringRule(row store.Scanner) (*meteringRule, error) {
	var m meteringRule
	var excluded int
	err := row.Scan(&m.ID, &m.ProjectID, &m.LabelID, &m.Direction, &excluded, &m.RemoteIPPrefix)
	m.Excluded = excluded != 0
	return &m, err
}

func renderLabel(l *meteringLabel) obj {
	return obj{"id": l.ID, "project_id": l.ProjectID, "tenant_id": l.ProjectID, "name": l.Name, "description": l.Description, "shared": l.Shared}
}

func renderMeteringRule(m *meteringRule) obj {
	return obj{"id": m.ID, "project_id": m.ProjectID, "tenant_id": m.ProjectID, "metering_label_id": m.LabelID,
		"direction": m.Direction, "excluded": m.Excluded, "remote_ip_prefix": m.RemoteIPPrefix}
}

func labelNotFound(id string) *api.Error {
	return notFound("MeteringLabelNotFound", "Metering label '%s' does not exist.", id)
}

func meteringRuleNotFound(id string) *api.Error {
	return notFound("MeteringLabelRuleNotFound", "Metering label rule '%s' does not exist.", id)
}

const labelColumns = `id, project_id, name, description, shared`
const meteringRuleColumns = `id, project_id, metering_label_id, direction, excluded, remote_ip_prefix`

func (s *Service) listLabels(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "get_metering_label", obj{}); err != nil {
		return nil, err
	}
	labels, err := store.QueryAll(r.Context(), s.db, scanLabel, `SELECT `+labelColumns+` FROM metering_labels`)
	if err != nil {
		return nil, err
	}
	items := []obj{}
	for _, l := range labels {
		items = append(items, renderLabel(l))
	}
	return s.list(r, "metering_labels", items, nil)
}

func (s *Service) loadLabel(r *http.Request, q store.Querier, id string) (*meteringLabel, error) {
	uid, ok := validUUID(id)
	if !ok {
		return nil, labelNotFound(id)
	}
	l, err := store.QueryOne(r.Context(), q, scanLabel, `SELECT `+labelColumns+` FROM metering_labels WHERE id = ?`, uid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, labelNotFound(id)
	}
	return l, err
}

func (s *Service) showLabel(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "get_metering_label", obj{}); err != nil {
		return nil, err
	}
	l, err := s.loadLabel(r, s.db, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return show(r, "metering_label", renderLabel(l)), nil
}

func (s *Service) createLabel(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[struct {
		Name        *string `json:"name"`
		Description *string `json:"description"`
		Shared      *bool   `json:"shared"`
		ProjectID   *string `json:"project_id"`
		TenantID    *string `json:"tenant_id"`
	}](r, "metering_label")
	if err != nil {
		return nil, err
	}
	project, err := ownerFor(s.caller(r), b.ProjectID, b.TenantID)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "create_metering_label", obj{"project_id": project}); err != nil {
		return nil, err
	}
	if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 1024)); err != nil {
		return nil, err
	}
	l := &meteringLabel{ID: newID(), ProjectID: project, Name: deref(b.Name), Description: deref(b.Description), Shared: derefOr(b.Shared, false)}
	if _, err := s.db.Exec(r.Context(), `INSERT INTO metering_labels (`+labelColumns+`) VALUES (?, ?, ?, ?, ?)`,
		l.ID, l.ProjectID, l.Name, l.Description, boolInt(l.Shared)); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, obj{"metering_label": renderLabel(l)}), nil
}

func (s *Service) deleteLabel(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "delete_metering_label", obj{}); err != nil {
		return nil, err
	}
	l, err := s.loadLabel(r, s.db, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(r.Context(), `DELETE FROM metering_labels WHERE id = ?`, l.ID); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

func (s *Service) listMeteringRules(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "get_metering_label_rule", obj{}); err != nil {
		return nil, err
	}
	rules, err := store.QueryAll(r.Context(), s.db, scanMeteringRule, `SELECT `+meteringRuleColumns+` FROM metering_label_rules`)
	if err != nil {
		return nil, err
	}
	items := []obj{}
	for _, m := range rules {
		items = append(items, renderMeteringRule(m))
	}
	return s.list(r, "metering_label_rules", items, nil)
}

func (s *Service) loadMeteringRule(r *http.Request, id string) (*meteringRule, error) {
	uid, ok := validUUID(id)
	if !ok {
		return nil, meteringRuleNotFound(id)
	}
	m, err := store.QueryOne(r.Context(), s.db, scanMeteringRule, `SELECT `+meteringRuleColumns+` FROM metering_label_rules WHERE id = ?`, uid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, meteringRuleNotFound(id)
	}
	return m, err
}

func (s *Service) showMeteringRule(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "get_metering_label_rule", obj{}); err != nil {
		return nil, err
	}
	m, err := s.loadMeteringRule(r, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return show(r, "metering_label_rule", renderMeteringRule(m)), nil
}

func (s *Service) createMeteringRule(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[struct {
		LabelID        *string `json:"metering_label_id"`
		Direction      *string `json:"direction"`
		Excluded       *bool   `json:"excluded"`
		RemoteIPPrefix *string `json:"remote_ip_prefix"`
		ProjectID      *string `json:"project_id"`
		TenantID       *string `json:"tenant_id"`
	}](r, "metering_label_rule")
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "create_metering_label_rule", obj{}); err != nil {
		return nil, err
	}
	if b.LabelID == nil || b.RemoteIPPrefix == nil {
		return nil, badRequest("metering_label_rule", "Failed to parse request. Required attributes 'metering_label_id' and 'remote_ip_prefix' must be specified")
	}
	dir := derefOr(b.Direction, "ingress")
	if dir != "ingress" && dir != "egress" {
		return nil, attrInvalid("direction", "'%s' is not in ['ingress', 'egress']", dir)
	}
	prefix, err := netip.ParsePrefix(*b.RemoteIPPrefix)
	if err != nil {
		return nil, attrInvalid("remote_ip_prefix", "'%s' is not a valid IP subnet", *b.RemoteIPPrefix)
	}
	prefix = prefix.Masked()
	var m *meteringRule
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		ctx := r.Context()
		l, err := s.loadLabel(r, tx, *b.LabelID)
		if err != nil {
			return err
		}
		existing, err := store.QueryAll(ctx, tx, scanMeteringRule, `SELECT `+meteringRuleColumns+` FROM metering_label_rules
			WHERE metering_label_id = ? AND direction = ?`, l.ID, dir)
		if err != nil {
			return err
		}
		for _, e := range existing {
			if ep, err := netip.ParsePrefix(e.RemoteIPPrefix); err == nil && ep.Overlaps(prefix) {
				return inUse("MeteringLabelRuleOverlaps", "Metering label rule with remote_ip_prefix '%s' overlaps another.", prefix)
			}
		}
		m = &meteringRule{ID: newID(), ProjectID: l.ProjectID, LabelID: l.ID, Direction: dir, Excluded: derefOr(b.Excluded, false), RemoteIPPrefix: prefix.String()}
		_, err = tx.Exec(ctx, `INSERT INTO metering_label_rules (`+meteringRuleColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			m.ID, m.ProjectID, m.LabelID, m.Direction, boolInt(m.Excluded), m.RemoteIPPrefix)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, obj{"metering_label_rule": renderMeteringRule(m)}), nil
}

func (s *Service) deleteMeteringRule(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "delete_metering_label_rule", obj{}); err != nil {
		return nil, err
	}
	m, err := s.loadMeteringRule(r, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(r.Context(), `DELETE FROM metering_label_rules WHERE id = ?`, m.ID); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

func (s *Service) meteringRoutes() []api.Route {
	type R = api.Route
	return []R{
		{Method: "GET", Pattern: "/v2.0/metering/metering-labels", Handler: s.listLabels},
		{Method: "POST", Pattern: "/v2.0/metering/metering-labels", Handler: s.createLabel},
		{Method: "GET", Pattern: "/v2.0/metering/metering-labels/{id}", Handler: s.showLabel},
		{Method: "DELETE", Pattern: "/v2.0/metering/metering-labels/{id}", Handler: s.deleteLabel},
		{Method: "GET", Pattern: "/v2.0/metering/metering-label-rules", Handler: s.listMeteringRules},
		{Method: "POST", Pattern: "/v2.0/metering/metering-label-rules", Handler: s.createMeteringRule},
		{Method: "GET", Pattern: "/v2.0/metering/metering-label-rules/{id}", Handler: s.showMeteringRule},
		{Method: "DELETE", Pattern: "/v2.0/metering/metering-label-rules/{id}", Handler: s.deleteMeteringRule},
	}
}
