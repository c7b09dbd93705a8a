package network

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

var securityGroupExtensions = []extension{
	{"security-group", "security-group", "The security groups extension.", "2012-10-05T10:00:00-00:00"},
	{"stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not", "2019-11-26T09:00:00-00:00"},
}

// ipProtocols maps the protocol names a rule may use to their numbers
// (Neutron's IP_PROTOCOL_MAP); icmpv6 is the legacy name of ipv6-icmp.
var ipProtocols = map[string]int{
	"ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2, "ip": 0, "ipip": 4,
	"ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58, "ipv6-nonxt": 59, "ipv6-opts": 60,
	"ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}

// portRangeProtocols are the protocols with port ranges, by name and number.
var portRangeProtocols = []string{"tcp", "udp", "sctp", "dccp", "udplite", "6", "17", "132", "33", "136"}

var icmpProtocols = []string{"icmp", "ipv6-icmp", "icmpv6", "1", "58"}

type securityGroup struct {
	ID, ProjectID, Name, Description string
	Stateful                         bool
	Revision                         int
	CreatedAt, UpdatedAt             string
}

type sgRule struct {
	ID, ProjectID, SecurityGroupID, Direction, Ethertype string
	Protocol                                             *string
	PortMin, PortMax                                     *int
	RemoteIPPrefix, RemoteGroupID                        *string
	Description                                          string
	Revision                                             int
	CreatedAt, UpdatedAt                                 string
}

const sgColumns = `id, project_id, name, description, stateful, revision_number, created_at, updated_at`

const ruleColumns = `id, project_id, security_group_id, direction, ethertype, protocol, port_range_min, port_range_max,
	remote_ip_prefix, remote_group_id, description, revision_number, created_at, updated_at`

func scanSecurityGroup(row store.Scanner) (*securityGroup, error) {
	var g securityGroup
	var stateful int
	err := row.Scan(&g.ID, &g.ProjectID, &g.Name, &g.Description, &stateful, &g.Revision, &g.CreatedAt, &g.UpdatedAt)
	g.Stateful = stateful != 0
	return &g, err
}

func scanRule(row store.Scanner) (*sgRule, error) {
	var rl sgRule
	var proto, prefix, group sql.NullString
	var pmin, pmax sql.NullInt64
	if err := row.Scan(&rl.ID, &rl.ProjectID, &rl.SecurityGroupID, &rl.Direction, &rl.Ethertype, &proto, &pmin, &pmax,
		&prefix, &group, &rl.Description, &rl.Revision, &rl.CreatedAt, &rl.UpdatedAt); err != nil {
		return nil, err
	}
	rl.Protocol, rl.RemoteIPPrefix, rl.RemoteGroupID = nullString(proto), nullString(prefix), nullString(group)
	rl.PortMin, rl.PortMax = nullInt(pmin), nullInt(pmax)
	return &rl, nil
}

func renderRule(rl *sgRule) obj {
	o := obj{
		"security_group_id": rl.SecurityGroupID, "direction": rl.Direction, "ethertype": rl.Ethertype,
		"protocol": strOrNil(rl.Protocol), "port_range_min": intOrNil(rl.PortMin), "port_range_max": intOrNil(rl.PortMax),
		"remote_ip_prefix": strOrNil(rl.RemoteIPPrefix), "remote_group_id": strOrNil(rl.RemoteGroupID),
	}
	o = standardAttrs(o, rl.ID, rl.ProjectID, rl.Description, rl.Revision, rl.CreatedAt, rl.UpdatedAt, nil)
	delete(o, "tags") // rules are not taggable
	return o
}

func renderSecurityGroup(g *securityGroup, rules []*sgRule, tags []string) obj {
	rs := make([]obj, 0, len(rules))
	for _, rl := range rules {
		rs = append(rs, renderRule(rl))
	}
	o := obj{"name": g.Name, "stateful": g.Stateful, "security_group_rules": rs}
	return standardAttrs(o, g.ID, g.ProjectID, g.Description, g.Revision, g.CreatedAt, g.UpdatedAt, tags)
}

func (s *Service) getSecurityGroup(ctx context.Context, q store.Querier, id string) (*securityGroup, error) {
	g, err := store.QueryOne(ctx, q, scanSecurityGroup, `SELECT `+sgColumns+` FROM security_groups WHERE id = ?`, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, securityGroupNotFound(id)
	}
	return g, err
}

func (s *Service) loadSecurityGroup(ctx context.Context, q store.Querier, c caller, id string) (*securityGroup, error) {
	return loadVisible(ctx, q, scanSecurityGroup, `SELECT `+sgColumns+` FROM security_groups WHERE id = ?`, id,
		func(g *securityGroup) bool { return c.admin || g.ProjectID == c.project }, securityGroupNotFound)
}

// ensureDefaultSecurityGroup returns the project's default group,
// creating it with Neutron's standard rules on first use: all egress,
// and ingress from members of the group itself, for IPv4 and IPv6. The
// default_security_groups key makes concurrent first uses create one.
func (s *Service) ensureDefaultSecurityGroup(ctx context.Context, tx *store.Tx, project string) (string, error) {
	id, err := store.QueryOne(ctx, tx, scanOneString, `SELECT security_group_id FROM default_security_groups WHERE project_id = ?`, project)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	t := neutronTime(now())
	g := &securityGroup{ID: newID(), ProjectID: project, Name: "default", Description: "Default security group", Stateful: true, CreatedAt: t, UpdatedAt: t}
	if err := insertSecurityGroup(ctx, tx, g); err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO default_security_groups (project_id, security_group_id) VALUES (?, ?)`, project, g.ID); err != nil {
		if store.IsConflict(err) {
			return "", store.ErrRetry
		}
		return "", err
	}
	self := g.ID
	for _, rl := range []sgRule{
		{Direction: "egress", Ethertype: "IPv4"}, {Direction: "egress", Ethertype: "IPv6"},
		{Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: &self}, {Direction: "ingress", Ethertype: "IPv6", RemoteGroupID: &self},
	} {
		rl.ID, rl.ProjectID, rl.SecurityGroupID, rl.CreatedAt, rl.UpdatedAt = newID(), project, g.ID, t, t
		if err := insertRule(ctx, tx, &rl); err != nil {
			return "", err
		}
	}
	return g.ID, nil
}

func insertSecurityGroup(ctx context.Context, tx *store.Tx, g *securityGroup) error {
	_, err := tx.Exec(ctx, `INSERT INTO security_groups (`+sgColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		g.ID, g.ProjectID, g.Name, g.Description, boolInt(g.Stateful), g.Revision, g.CreatedAt, g.UpdatedAt)
	return err
}

func insertRule(ctx context.Context, tx *store.Tx, rl *sgRule) error {
	_, err := tx.Exec(ctx, `INSERT INTO security_group_rules (`+ruleColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		rl.ID, rl.ProjectID, rl.SecurityGroupID, rl.Direction, rl.Ethertype, rl.Protocol, rl.PortMin, rl.PortMax,
		rl.RemoteIPPrefix, rl.RemoteGroupID, rl.Description, rl.Revision, rl.CreatedAt, rl.UpdatedAt)
	return err
}

// ensureCallerDefault creates the caller's default group if it has none
// yet, as Neutron does when a project first lists its groups.
func (s *Service) ensureCallerDefault(ctx context.Context, c caller) error {
	if c.project == "" {
		return nil
	}
	n, err := count(ctx, s.db, `SELECT COUNT(*) FROM default_security_groups WHERE project_id = ?`, c.project)
	if err != nil || n > 0 {
		return err
	}
	return s.writeTx(ctx, func(tx *store.Tx) error {
		_, err := s.ensureDefaultSecurityGroup(ctx, tx, c.project)
		return err
	})
}

func rulesByGroup(ctx context.Context, q store.Querier, groupID string) (map[string][]*sgRule, error) {
	query, args := `SELECT `+ruleColumns+` FROM security_group_rules ORDER BY created_at, id`, []any{}
	if groupID != "" {
		query, args = `SELECT `+ruleColumns+` FROM security_group_rules WHERE security_group_id = ? ORDER BY created_at, id`, []any{groupID}
	}
	rules, err := store.QueryAll(ctx, q, scanRule, query, args...)
	if err != nil {
		return nil, err
	}
	out := map[string][]*sgRule{}
	for _, rl := range rules {
		out[rl.SecurityGroupID] = append(out[rl.SecurityGroupID], rl)
	}
	return out, nil
}

func (s *Service) securityGroupObj(ctx context.Context, q store.Querier, g *securityGroup) (obj, error) {
	rules, err := rulesByGroup(ctx, q, g.ID)
	if err != nil {
		return nil, err
	}
	tags, err := tagsFor(ctx, q, []string{g.ID})
	if err != nil {
		return nil, err
	}
	return renderSecurityGroup(g, rules[g.ID], tags[g.ID]), nil
}

func (s *Service) listSecurityGroups(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	groups, err := queryList(s, r, c, "get_security_group", scanSecurityGroup, `SELECT `+sgColumns+` FROM security_groups`, `project_id = ?`, func() error { return s.ensureCallerDefault(ctx, c) })
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(groups))
	for i, g := range groups {
		ids[i] = g.ID
	}
	rules := map[string][]*sgRule{}
	err = forChunks(ids, func(_ []string, in string, args []any) error {
		rs, err := store.QueryAll(ctx, s.db, scanRule, `SELECT `+ruleColumns+` FROM security_group_rules WHERE security_group_id IN `+in+` ORDER BY created_at, id`, args...)
		for _, rl := range rs {
			rules[rl.SecurityGroupID] = append(rules[rl.SecurityGroupID], rl)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	items, err := renderTagged(ctx, s.db, groups, func(g *securityGroup) string { return g.ID },
		func(g *securityGroup) bool { return c.admin || g.ProjectID == c.project },
		func(g *securityGroup, tags []string) obj { return renderSecurityGroup(g, rules[g.ID], tags) })
	if err != nil {
		return nil, err
	}
	return s.list(r, "security_groups", items, nil)
}

func (s *Service) showSecurityGroup(r *http.Request) (*api.Response, error) {
	return showOne(s, r, "security_group", s.loadSecurityGroup, s.securityGroupObj)
}

type securityGroupBody struct {
	Name        *string  `json:"name"`
	Description *string  `json:"description"`
	Stateful    *bool    `json:"stateful"`
	ProjectID   *string  `json:"project_id"`
	TenantID    *string  `json:"tenant_id"`
	Tags        []string `json:"tags"`
}

func defaultExists() *api.Error {
	return inUse("SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
}

func (s *Service) createSecurityGroup(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[securityGroupBody](r, "security_group")
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	project, err := s.authorizeCreate(r, c, "create_security_group", b.ProjectID, b.TenantID)
	if err != nil {
		return nil, err
	}
	if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 255), validTags(b.Tags)); err != nil {
		return nil, err
	}
	if strings.EqualFold(deref(b.Name), "default") {
		return nil, defaultExists()
	}
	t := neutronTime(now())
	g := &securityGroup{ID: newID(), ProjectID: project, Name: deref(b.Name), Description: deref(b.Description),
		Stateful: derefOr(b.Stateful, true), CreatedAt: t, UpdatedAt: t}
	var o obj
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		ctx := r.Context()
		if _, err := s.ensureDefaultSecurityGroup(ctx, tx, project); err != nil {
			return err
		}
		if err := s.checkQuota(ctx, tx, project, "security_group", 1); err != nil {
			return err
		}
		if err := insertSecurityGroup(ctx, tx, g); err != nil {
			return err
		}
		// A new group may send anything, as Neutron's are created with
		// egress rules for both families.
		for _, et := range []string{"IPv4", "IPv6"} {
			rl := &sgRule{ID: newID(), ProjectID: project, SecurityGroupID: g.ID, Direction: "egress", Ethertype: et, CreatedAt: t, UpdatedAt: t}
			if err := insertRule(ctx, tx, rl); err != nil {
				return err
			}
		}
		if err := setTags(ctx, tx, g.ID, b.Tags); err != nil {
			return err
		}
		var err error
		o, err = s.securityGroupObj(ctx, tx, g)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.notify(r.Context(), Event{Resource: "security_group", ID: g.ID, Action: "create"})
	return api.JSON(http.StatusCreated, obj{"security_group": o}), nil
}

func (s *Service) isDefaultGroup(ctx context.Context, q store.Querier, g *securityGroup) (bool, error) {
	n, err := count(ctx, q, `SELECT COUNT(*) FROM default_security_groups WHERE security_group_id = ?`, g.ID)
	return n > 0, err
}

func (s *Service) updateSecurityGroup(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[securityGroupBody](r, "security_group")
	if err != nil {
		return nil, err
	}
	if b.ProjectID != nil || b.TenantID != nil || b.Tags != nil {
		return nil, badRequest("security_group", "Cannot update read-only attribute")
	}
	if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 255)); err != nil {
		return nil, err
	}
	return updateOwned(s, r, "security_group", s.loadSecurityGroup, func(ctx context.Context, tx *store.Tx, g *securityGroup) (obj, error) {
		isDef, err := s.isDefaultGroup(ctx, tx, g)
		if err != nil {
			return nil, err
		}
		if b.Name != nil && *b.Name != g.Name {
			if isDef {
				return nil, inUse("SecurityGroupCannotUpdateDefault", "Updating default security group not allowed.")
			}
			if strings.EqualFold(*b.Name, "default") {
				return nil, defaultExists()
			}
			g.Name = *b.Name
		}
		if b.Description != nil {
			g.Description = *b.Description
		}
		if b.Stateful != nil && *b.Stateful != g.Stateful {
			n, err := count(ctx, tx, `SELECT COUNT(*) FROM port_security_groups WHERE security_group_id = ?`, g.ID)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				return nil, inUse("SecurityGroupInUse", "Security Group %s in use.", g.ID)
			}
			g.Stateful = *b.Stateful
		}
		touch(&g.Revision, &g.UpdatedAt)
		if _, err := tx.Exec(ctx, `UPDATE security_groups SET name = ?, description = ?, stateful = ?, revision_number = ?, updated_at = ? WHERE id = ?`,
			g.Name, g.Description, boolInt(g.Stateful), g.Revision, g.UpdatedAt, g.ID); err != nil {
			return nil, err
		}
		return s.securityGroupObj(ctx, tx, g)
	})
}

func (s *Service) deleteSecurityGroup(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	return deleteOwned(s, r, "security_group", s.loadSecurityGroup, func(ctx context.Context, tx *store.Tx, g *securityGroup) error {
		isDef, err := s.isDefaultGroup(ctx, tx, g)
		if err != nil {
			return err
		}
		if isDef && !c.admin {
			return inUse("SecurityGroupCannotRemoveDefault", "Insufficient rights for removing default security group.")
		}
		n, err := count(ctx, tx, `SELECT COUNT(*) FROM port_security_groups WHERE security_group_id = ?`, g.ID)
		if err != nil {
			return err
		}
		if n > 0 {
			return inUse("SecurityGroupInUse", "Security Group %s in use.", g.ID)
		}
		for _, stmt := range []string{
			`DELETE FROM security_group_rules WHERE security_group_id = ? OR remote_group_id = ?`,
		} {
			if _, err := tx.Exec(ctx, stmt, g.ID, g.ID); err != nil {
				return err
			}
		}
		for _, stmt := range []string{`DELETE FROM default_security_groups WHERE security_group_id = ?`, `DELETE FROM tags WHERE resource_id = ?`, `DELETE FROM security_groups WHERE id = ?`} {
			if _, err := tx.Exec(ctx, stmt, g.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// Rules.

func (s *Service) listRules(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	rules, err := queryList(s, r, c, "get_security_group_rule", scanRule, `SELECT `+ruleColumns+` FROM security_group_rules`, `project_id = ?`, func() error { return s.ensureCallerDefault(ctx, c) })
	if err != nil {
		return nil, err
	}
	var items []obj
	for _, rl := range rules {
		if c.admin || rl.ProjectID == c.project {
			items = append(items, renderRule(rl))
		}
	}
	return s.list(r, "security_group_rules", items, nil)
}

func ruleNotFound(id string) *api.Error {
	return notFound("SecurityGroupRuleNotFound", "Security group rule %s does not exist", id)
}

func (s *Service) loadRule(ctx context.Context, q store.Querier, c caller, id string) (*sgRule, error) {
	return loadVisible(ctx, q, scanRule, `SELECT `+ruleColumns+` FROM security_group_rules WHERE id = ?`, id,
		func(rl *sgRule) bool { return c.admin || rl.ProjectID == c.project }, ruleNotFound)
}

func (s *Service) showRule(r *http.Request) (*api.Response, error) {
	rl, err := s.loadRule(r.Context(), s.db, s.caller(r), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return show(r, "security_group_rule", renderRule(rl)), nil
}

type ruleBody struct {
	SecurityGroupID *string              `json:"security_group_id"`
	Direction       *string              `json:"direction"`
	Ethertype       *string              `json:"ethertype"`
	Protocol        api.Optional[any]    `json:"protocol"`
	PortMin         api.Optional[any]    `json:"port_range_min"`
	PortMax         api.Optional[any]    `json:"port_range_max"`
	RemoteIPPrefix  api.Optional[string] `json:"remote_ip_prefix"`
	RemoteGroupID   api.Optional[string] `json:"remote_group_id"`
	Description     *string              `json:"description"`
	ProjectID       *string              `json:"project_id"`
	TenantID        *string              `json:"tenant_id"`
}

// portValue reads a port or ICMP type/code given as a number or text.
func portValue(v api.Optional[any]) (*int, error) {
	if !v.Set || v.Null {
		return nil, nil
	}
	var n int
	switch x := v.Value.(type) {
	case float64:
		if x != float64(int(x)) {
			return nil, nerr(400, "SecurityGroupInvalidPortValue", "Invalid value for port %v", x)
		}
		n = int(x)
	case string:
		i, err := strconv.Atoi(x)
		if err != nil {
			return nil, nerr(400, "SecurityGroupInvalidPortValue", "Invalid value for port %s", x)
		}
		n = i
	default:
		return nil, nerr(400, "SecurityGroupInvalidPortValue", "Invalid value for port %v", v.Value)
	}
	if n < 0 || n > 65535 {
		return nil, nerr(400, "SecurityGroupInvalidPortValue", "Invalid value for port %d", n)
	}
	return &n, nil
}

// protocolValue normalises a rule's protocol: a name (lower case, icmpv6
// as ipv6-icmp ... kept as given, like Neutron) or a number 0-255; "any"
// is no protocol.
func protocolValue(v api.Optional[any]) (*string, error) {
	if !v.Set || v.Null {
		return nil, nil
	}
	names := make([]string, 0, len(ipProtocols))
	for n := range ipProtocols {
		names = append(names, n)
	}
	slices.Sort(names)
	invalid := func(p any) error {
		return nerr(400, "SecurityGroupRuleInvalidProtocol", "Security group rule protocol %v not supported. Only protocol values %v and integer representations [0 to 255] are supported.", p, append([]string{"None", "any"}, names...))
	}
	var text string
	switch x := v.Value.(type) {
	case string:
		text = x
	case float64:
		if x != float64(int(x)) {
			return nil, invalid(x)
		}
		text = strconv.Itoa(int(x))
	default:
		return nil, invalid(v.Value)
	}
	if text == "" || strings.EqualFold(text, "any") {
		return nil, nil
	}
	if n, err := strconv.Atoi(text); err == nil {
		if n < 0 || n > 255 {
			return nil, invalid(text)
		}
		t := strconv.Itoa(n)
		return &t, nil
	}
	l := strings.ToLower(text)
	if _, ok := ipProtocols[l]; !ok {
		return nil, invalid(text)
	}
	return &l, nil
}

func (s *Service) createRule(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[ruleBody](r, "security_group_rule")
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	rl, err := validateRule(&b)
	if err != nil {
		return nil, err
	}
	var o obj
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		ctx := r.Context()
		g, err := s.loadSecurityGroup(ctx, tx, c, *b.SecurityGroupID)
		if err != nil {
			return err
		}
		project, err := ownerFor(c, b.ProjectID, b.TenantID)
		if err != nil {
			return err
		}
		if c.admin && b.ProjectID == nil && b.TenantID == nil {
			project = g.ProjectID
		}
		if err := s.authorize(r, "create_security_group_rule", obj{"project_id": g.ProjectID}); err != nil {
			return err
		}
		rl.ProjectID, rl.SecurityGroupID = project, g.ID
		if rl.RemoteGroupID != nil {
			rg, err := s.loadSecurityGroup(ctx, tx, c, *rl.RemoteGroupID)
			if err != nil {
				return err
			}
			rl.RemoteGroupID = &rg.ID
		}
		if err := s.checkQuota(ctx, tx, project, "security_group_rule", 1); err != nil {
			return err
		}
		existing, err := rulesByGroup(ctx, tx, g.ID)
		if err != nil {
			return err
		}
		for _, e := range existing[g.ID] {
			if sameRule(e, rl) {
				return inUse("SecurityGroupRuleExists", "Security group rule already exists. Rule id is %s.", e.ID)
			}
		}
		if err := insertRule(ctx, tx, rl); err != nil {
			return err
		}
		o = renderRule(rl)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.notify(r.Context(), Event{Resource: "security_group", ID: rl.SecurityGroupID, Action: "update"})
	return api.JSON(http.StatusCreated, obj{"security_group_rule": o}), nil
}

func eqPtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// sameRule compares what a rule matches, ignoring its description.
func sameRule(a, b *sgRule) bool {
	norm := func(p *string) *string {
		if p == nil {
			return nil
		}
		v := *p
		if n, ok := ipProtocols[v]; ok {
			v = strconv.Itoa(n)
		}
		return &v
	}
	masked := func(p *string) *string {
		if p == nil {
			return nil
		}
		if n, err := netip.ParsePrefix(*p); err == nil {
			v := n.Masked().String()
			return &v
		}
		return p
	}
	return a.Direction == b.Direction && a.Ethertype == b.Ethertype && eqPtr(norm(a.Protocol), norm(b.Protocol)) &&
		eqPtr(a.PortMin, b.PortMin) && eqPtr(a.PortMax, b.PortMax) && eqPtr(masked(a.RemoteIPPrefix), masked(b.RemoteIPPrefix)) &&
		eqPtr(a.RemoteGroupID, b.RemoteGroupID)
}

// validateRule checks a rule as Neutron's security group database does.
func validateRule(b *ruleBody) (*sgRule, error) {
	if b.SecurityGroupID == nil {
		return nil, badRequest("security_group_rule", "Failed to parse request. Required attribute 'security_group_id' not specified")
	}
	if b.Direction == nil {
		return nil, badRequest("security_group_rule", "Failed to parse request. Required attribute 'direction' not specified")
	}
	if *b.Direction != "ingress" && *b.Direction != "egress" {
		return nil, attrInvalid("direction", "'%s' is not in ['ingress', 'egress']", *b.Direction)
	}
	if err := checkLen("description", b.Description, 255); err != nil {
		return nil, err
	}
	t := neutronTime(now())
	rl := &sgRule{ID: newID(), Direction: *b.Direction, Ethertype: "IPv4", Description: deref(b.Description), CreatedAt: t, UpdatedAt: t}
	if b.Ethertype != nil {
		switch strings.ToLower(*b.Ethertype) {
		case "ipv4":
			rl.Ethertype = "IPv4"
		case "ipv6":
			rl.Ethertype = "IPv6"
		default:
			return nil, nerr(400, "SecurityGroupRuleInvalidEtherType", "Security group rule for ethertype '%s' not supported. Allowed values are ['IPv4', 'IPv6'].", *b.Ethertype)
		}
	}
	var err error
	if rl.Protocol, err = protocolValue(b.Protocol); err != nil {
		return nil, err
	}
	if rl.PortMin, err = portValue(b.PortMin); err != nil {
		return nil, err
	}
	if rl.PortMax, err = portValue(b.PortMax); err != nil {
		return nil, err
	}
	proto := deref(rl.Protocol)
	switch {
	case proto == "" && (rl.PortMin != nil || rl.PortMax != nil):
		return nil, invalidInput("Must also specify protocol if port range is given")
	case slices.Contains(portRangeProtocols, proto):
		if rl.PortMin != nil && *rl.PortMin == 0 || rl.PortMax != nil && *rl.PortMax == 0 {
			return nil, nerr(400, "SecurityGroupInvalidPortValue", "Invalid value for port 0")
		}
		// Neutron wants both ends of a range, or neither.
		if (rl.PortMin == nil) != (rl.PortMax == nil) || rl.PortMin != nil && *rl.PortMin > *rl.PortMax {
			return nil, nerr(400, "SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max")
		}
	case slices.Contains(icmpProtocols, proto):
		for _, f := range []struct {
			name, attr string
			v          *int
		}{{"type", "port_range_min", rl.PortMin}, {"code", "port_range_max", rl.PortMax}} {
			if f.v != nil && *f.v > 255 {
				return nil, nerr(400, "SecurityGroupInvalidIcmpValue", "Invalid value for ICMP %s (%s) %d. It must be 0 to 255.", f.name, f.attr, *f.v)
			}
		}
		if rl.PortMin == nil && rl.PortMax != nil {
			return nil, nerr(400, "SecurityGroupMissingIcmpType", "ICMP code (port-range-max) %d is provided but ICMP type (port-range-min) is missing.", *rl.PortMax)
		}
		if rl.Ethertype == "IPv4" && (proto == "ipv6-icmp" || proto == "icmpv6" || proto == "58") {
			return nil, nerr(400, "SecurityGroupEthertypeConflictWithProtocol", "Invalid ethertype %s for protocol %s.", rl.Ethertype, proto)
		}
	default:
		if rl.PortMin != nil || rl.PortMax != nil {
			return nil, invalidInput("Invalid protocol %s for port range, only supported for TCP, UDP, UDPLITE, SCTP and DCCP", proto)
		}
	}
	if b.RemoteIPPrefix.Set && !b.RemoteIPPrefix.Null && b.RemoteGroupID.Set && !b.RemoteGroupID.Null {
		return nil, invalidInput("Only remote_ip_prefix or remote_group_id may be provided")
	}
	if b.RemoteIPPrefix.Set && !b.RemoteIPPrefix.Null {
		text := b.RemoteIPPrefix.Value
		if !strings.Contains(text, "/") {
			if a, err := netip.ParseAddr(text); err == nil {
				text = netip.PrefixFrom(a, a.BitLen()).String()
			}
		}
		p, err := netip.ParsePrefix(text)
		if err != nil {
			return nil, nerr(400, "InvalidCIDR", "Invalid CIDR %s given as IP prefix.", b.RemoteIPPrefix.Value)
		}
		if (p.Addr().Is4() && rl.Ethertype != "IPv4") || (!p.Addr().Is4() && rl.Ethertype != "IPv6") {
			return nil, invalidInput("Conflicting value ethertype %s for CIDR %s", rl.Ethertype, b.RemoteIPPrefix.Value)
		}
		// Kept as given, host bits and all, as Neutron keeps it (clients
		// compare what they sent); what it matches is the masked network.
		v := p.String()
		rl.RemoteIPPrefix = &v
	}
	if b.RemoteGroupID.Set && !b.RemoteGroupID.Null {
		v := b.RemoteGroupID.Value
		rl.RemoteGroupID = &v
	}
	return rl, nil
}

func (s *Service) deleteRule(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	err := s.commit(r, func(ctx context.Context, tx *store.Tx) ([]Event, error) {
		rl, err := s.loadRule(ctx, tx, c, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		if err := s.authorizeOwned(r, "delete_security_group_rule", rl.ProjectID); err != nil {
			return nil, err
		}
		_, err = tx.Exec(ctx, `DELETE FROM security_group_rules WHERE id = ?`, rl.ID)
		return []Event{{Resource: "security_group", ID: rl.SecurityGroupID, Action: "update"}}, err
	})
	if err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}
