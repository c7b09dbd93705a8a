package compute

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// The proxy APIs are Nova's old views of images, security groups and
// floating IPs, answered by calling the image and networking services
// with the caller's token. Nova removed them at 2.36 (and the floating
// IP server actions at 2.44); Tempest and older clients still use them
// at 2.1.

// proxyGone answers 404 from 2.36 on, as Nova does.
func proxyGone(r *http.Request) error {
	if at(r, 36) {
		return api.NotFound("The resource could not be found.")
	}
	return nil
}

// remote calls another service with the caller's token; a 2xx answer is
// decoded into out and other statuses are returned for the caller to map.
func (s *Service) remote(r *http.Request, base, method, path string, body, out any) (int, []byte, error) {
	if base == "" {
		return 0, nil, api.Errorf(http.StatusNotImplemented, "The service this API proxies to is not configured.")
	}
	var rd *strings.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = strings.NewReader(string(b))
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(r.Context(), method, base+path, rd)
	} else {
		req, err = http.NewRequestWithContext(r.Context(), method, base+path, nil)
	}
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Auth-Token", s.caller(r).token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Openstack-Request-Id", api.RequestID(r.Context()))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		if method == http.MethodPatch {
			req.Header.Set("Content-Type", "application/openstack-images-v2.1-json-patch")
		}
	}
	resp, err := s.proxy.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	var buf strings.Builder
	if _, err := ioCopyLimit(&buf, resp.Body, 8<<20); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	data := []byte(buf.String())
	if out != nil && resp.StatusCode/100 == 2 && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, data, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, data, nil
}

// statusErrors maps statuses of another service's answer to the errors a
// proxy returns for them (nil: also success).
type statusErrors map[int]error

// call is remote for the usual case: the answer must have status want;
// any other becomes the error special names for it, or remoteError's
// with notFound as the 404 message.
func (s *Service) call(r *http.Request, base, method, path string, body, out any, want int, notFound string, special ...statusErrors) error {
	st, data, err := s.remote(r, base, method, path, body, out)
	if err != nil || st == want {
		return err
	}
	for _, m := range special {
		if e, ok := m[st]; ok {
			return e
		}
	}
	return remoteError(st, data, notFound)
}

// remoteError turns another service's failure into a Nova error, keeping
// its message when it has one.
func remoteError(status int, data []byte, notFound string) error {
	msg := ""
	var m map[string]any
	if json.Unmarshal(data, &m) == nil {
		for _, v := range m {
			if e, ok := v.(map[string]any); ok {
				if s, ok := e["message"].(string); ok {
					msg = s
				}
			}
		}
	}
	switch {
	case status == http.StatusNotFound:
		return api.NotFound("%s", notFound)
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return api.Forbidden("%s", firstNonEmpty(msg, "Policy doesn't allow this operation."))
	case status == http.StatusConflict:
		return api.Conflict("%s", firstNonEmpty(msg, "Conflict."))
	case status/100 == 4:
		return api.BadRequest("%s", firstNonEmpty(msg, "Bad request."))
	}
	return fmt.Errorf("remote service answered %d: %s", status, data)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Security groups

func (s *Service) sgRuleView(rule map[string]any, groups map[string]map[string]any) map[string]any {
	proto, _ := rule["protocol"].(string)
	out := map[string]any{"id": rule["id"], "parent_group_id": rule["security_group_id"], "ip_protocol": nil, "ip_range": map[string]any{}, "group": map[string]any{}}
	if proto != "" {
		out["ip_protocol"] = proto
	}
	from, to := -1, -1
	if v, ok := rule["port_range_min"].(float64); ok {
		from = int(v)
	} else if proto == "tcp" || proto == "udp" {
		from = 1
	}
	if v, ok := rule["port_range_max"].(float64); ok {
		to = int(v)
	} else if proto == "tcp" || proto == "udp" {
		to = 65535
	}
	out["from_port"], out["to_port"] = from, to
	if remote, _ := rule["remote_group_id"].(string); remote != "" {
		g := map[string]any{}
		if rg, ok := groups[remote]; ok {
			g["name"], g["tenant_id"] = rg["name"], rg["project_id"]
		}
		out["group"] = g
	} else {
		cidr, _ := rule["remote_ip_prefix"].(string)
		if cidr == "" {
			if rule["ethertype"] == "IPv6" {
				cidr = "::/0"
			} else {
				cidr = "0.0.0.0/0"
			}
		}
		out["ip_range"] = map[string]any{"cidr": cidr}
	}
	return out
}

func (s *Service) sgView(g map[string]any, groups map[string]map[string]any) map[string]any {
	rules := []map[string]any{}
	list, _ := g["security_group_rules"].([]any)
	for _, x := range list {
		rule, _ := x.(map[string]any)
		if rule["direction"] != "ingress" {
			continue // Nova shows ingress rules only
		}
		rules = append(rules, s.sgRuleView(rule, groups))
	}
	return map[string]any{"id": g["id"], "name": g["name"], "description": g["description"], "tenant_id": g["project_id"], "rules": rules}
}

func (s *Service) neutronGroups(r *http.Request, query string) ([]map[string]any, error) {
	var out struct {
		SecurityGroups []map[string]any `json:"security_groups"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/security-groups"+query, nil, &out, http.StatusOK, "Security group not found."); err != nil {
		return nil, err
	}
	return out.SecurityGroups, nil
}

func byID(groups []map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, g := range groups {
		id, _ := g["id"].(string)
		out[id] = g
	}
	return out
}

func (s *Service) listSecurityGroups(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	c := s.caller(r)
	q := "?project_id=" + url.QueryEscape(c.project)
	if all, _ := queryBool(r.URL.Query().Get("all_tenants")); all && c.admin {
		q = ""
	}
	groups, err := s.neutronGroups(r, q)
	if err != nil {
		return nil, err
	}
	idx := byID(groups)
	out := make([]map[string]any, 0, len(groups))
	for _, g := range groups {
		out = append(out, s.sgView(g, idx))
	}
	sort.SliceStable(out, func(i, j int) bool { return fmt.Sprint(out[i]["name"]) < fmt.Sprint(out[j]["name"]) })
	return api.JSON(http.StatusOK, map[string]any{"security_groups": out}), nil
}

func (s *Service) showSecurityGroup(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	id := r.PathValue("group_id")
	var out struct {
		SecurityGroup map[string]any `json:"security_group"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/security-groups/"+url.PathEscape(id), nil, &out, http.StatusOK, "Security group "+id+" not found."); err != nil {
		return nil, err
	}
	groups, err := s.neutronGroups(r, "")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"security_group": s.sgView(out.SecurityGroup, byID(groups))}), nil
}

type sgBody struct {
	SecurityGroup *struct {
		Name        *string `json:"name"`
		Description *string `json:"description"`
	} `json:"security_group"`
}

// decodeSecurityGroup reads the body of a security group create or
// update as the networking service's security_group.
func decodeSecurityGroup(r *http.Request) (map[string]any, error) {
	var b sgBody
	if err := api.DecodeJSON(r, &b); err != nil {
		return nil, err
	}
	in := b.SecurityGroup
	if in == nil || in.Name == nil {
		return nil, api.BadRequest("Security group name is required")
	}
	if *in.Name == "" || len(*in.Name) > 255 || strings.TrimSpace(*in.Name) == "" {
		return nil, api.BadRequest("Security group name has invalid characters or length.")
	}
	out := map[string]any{"name": *in.Name}
	if in.Description != nil {
		if len(*in.Description) > 255 {
			return nil, api.BadRequest("Security group description is too long.")
		}
		out["description"] = *in.Description
	}
	return out, nil
}

func (s *Service) createSecurityGroup(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	g, err := decodeSecurityGroup(r)
	if err != nil {
		return nil, err
	}
	var out struct {
		SecurityGroup map[string]any `json:"security_group"`
	}
	quota := api.Forbidden("Quota exceeded, too many security groups.")
	if err := s.call(r, s.cfg.NetworkURL, "POST", "/v2.0/security-groups", map[string]any{"security_group": g}, &out, http.StatusCreated,
		"Security group not found.", statusErrors{http.StatusConflict: quota, http.StatusForbidden: quota}); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"security_group": s.sgView(out.SecurityGroup, nil)}), nil
}

func (s *Service) updateSecurityGroup(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	g, err := decodeSecurityGroup(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("group_id")
	var out struct {
		SecurityGroup map[string]any `json:"security_group"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "PUT", "/v2.0/security-groups/"+url.PathEscape(id), map[string]any{"security_group": g}, &out, http.StatusOK, "Security group "+id+" not found."); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"security_group": s.sgView(out.SecurityGroup, nil)}), nil
}

func (s *Service) deleteSecurityGroup(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	id := r.PathValue("group_id")
	if err := s.call(r, s.cfg.NetworkURL, "DELETE", "/v2.0/security-groups/"+url.PathEscape(id), nil, nil, http.StatusNoContent,
		"Security group "+id+" not found.", statusErrors{http.StatusConflict: api.BadRequest("Security group is still in use")}); err != nil {
		return nil, err
	}
	return accepted(), nil
}

func (s *Service) createSecurityGroupRule(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	var body struct {
		Rule *struct {
			ParentGroupID *string `json:"parent_group_id"`
			IPProtocol    *string `json:"ip_protocol"`
			FromPort      any     `json:"from_port"`
			ToPort        any     `json:"to_port"`
			CIDR          *string `json:"cidr"`
			GroupID       *string `json:"group_id"`
		} `json:"security_group_rule"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.Rule
	if in == nil || in.ParentGroupID == nil || *in.ParentGroupID == "" {
		return nil, api.BadRequest("Invalid input for field/attribute security_group_rule. 'parent_group_id' is a required property")
	}
	if !isUUID(*in.ParentGroupID) {
		// Nova's neutron security group API: validate_id.
		return nil, api.BadRequest("Security group id should be uuid")
	}
	rule := map[string]any{"security_group_id": *in.ParentGroupID, "direction": "ingress", "ethertype": "IPv4"}
	proto := ""
	if in.IPProtocol != nil && *in.IPProtocol != "" {
		proto = strings.ToLower(*in.IPProtocol)
		if proto != "tcp" && proto != "udp" && proto != "icmp" {
			return nil, api.BadRequest("Invalid IP protocol %s.", *in.IPProtocol)
		}
		rule["protocol"] = proto
	}
	port := func(name string, v any) (int, bool, error) {
		switch t := v.(type) {
		case nil:
			return 0, false, nil
		case float64:
			return int(t), true, nil
		case string:
			n, err := strconv.Atoi(t)
			if err != nil {
				return 0, false, api.BadRequest("Invalid port %s: %s is not an integer.", name, t)
			}
			return n, true, nil
		}
		return 0, false, api.BadRequest("Invalid port %s.", name)
	}
	from, fromSet, err := port("from_port", in.FromPort)
	if err != nil {
		return nil, err
	}
	to, toSet, err := port("to_port", in.ToPort)
	if err != nil {
		return nil, err
	}
	switch proto {
	case "tcp", "udp":
		if !fromSet || !toSet || from < 1 || to > 65535 || from > to {
			return nil, api.BadRequest("Invalid port range %d:%d. Valid TCP ports should be between 1-65535", from, to)
		}
		rule["port_range_min"], rule["port_range_max"] = from, to
	case "icmp":
		if fromSet && toSet && (from < -1 || from > 255 || to < -1 || to > 255) {
			return nil, api.BadRequest("ICMP type and code must be between -1 and 255.")
		}
		if fromSet && from != -1 {
			rule["port_range_min"] = from
			if toSet && to != -1 {
				rule["port_range_max"] = to
			}
		}
	default:
		if (fromSet && from != -1) || (toSet && to != -1) {
			return nil, api.BadRequest("Ports require a protocol.")
		}
	}
	switch {
	case in.GroupID != nil && *in.GroupID != "":
		rule["remote_group_id"] = *in.GroupID
	case in.CIDR != nil && *in.CIDR != "":
		ip, _, err := net.ParseCIDR(*in.CIDR)
		if err != nil {
			return nil, api.BadRequest("Invalid cidr %s.", *in.CIDR)
		}
		if ip.To4() == nil {
			rule["ethertype"] = "IPv6"
		}
		rule["remote_ip_prefix"] = *in.CIDR
	default:
		rule["remote_ip_prefix"] = "0.0.0.0/0"
	}
	var out struct {
		Rule map[string]any `json:"security_group_rule"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": rule}, &out, http.StatusCreated,
		"Security group "+*in.ParentGroupID+" not found.",
		statusErrors{http.StatusConflict: api.BadRequest("This rule already exists in group %s", *in.ParentGroupID)}); err != nil {
		return nil, err
	}
	groups, err := s.neutronGroups(r, "")
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"security_group_rule": s.sgRuleView(out.Rule, byID(groups))}), nil
}

func (s *Service) deleteSecurityGroupRule(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	id := r.PathValue("rule_id")
	if err := s.call(r, s.cfg.NetworkURL, "DELETE", "/v2.0/security-group-rules/"+url.PathEscape(id), nil, nil, http.StatusNoContent, "Rule ("+id+") not found."); err != nil {
		return nil, err
	}
	return accepted(), nil
}

// serverPorts are the ports the networking service has for a server.
func (s *Service) serverPorts(r *http.Request, serverID string) ([]map[string]any, error) {
	var out struct {
		Ports []map[string]any `json:"ports"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/ports?device_id="+url.QueryEscape(serverID), nil, &out, http.StatusOK, "Ports not found."); err != nil {
		return nil, err
	}
	return out.Ports, nil
}

func (s *Service) listServerSecurityGroups(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:servers:show")
	if err != nil {
		return nil, err
	}
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	ports, err := s.serverPorts(r, i.ID)
	if err != nil {
		return nil, err
	}
	groups, err := s.neutronGroups(r, "")
	if err != nil {
		return nil, err
	}
	idx := byID(groups)
	seen := map[string]bool{}
	out := []map[string]any{}
	for _, p := range ports {
		sgs, _ := p["security_groups"].([]any)
		for _, x := range sgs {
			id, _ := x.(string)
			if g, ok := idx[id]; ok && !seen[id] {
				seen[id] = true
				out = append(out, s.sgView(g, idx))
			}
		}
	}
	return api.JSON(http.StatusOK, map[string]any{"security_groups": out}), nil
}

// changeServerGroup adds or removes a security group on every port of a
// server, by name or id, as Nova's addSecurityGroup does.
func (s *Service) changeServerGroup(r *http.Request, arg json.RawMessage, add bool) (*api.Response, error) {
	var in struct {
		Name *string `json:"name"`
	}
	if err := api.DecodeBytes(arg, &in, true); err != nil {
		return nil, err
	}
	if in.Name == nil || *in.Name == "" {
		return nil, api.BadRequest("Missing parameter dict")
	}
	i, err := s.serverFor(r, "os_compute_api:servers:update")
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	groups, err := s.neutronGroups(r, "?project_id="+url.QueryEscape(i.ProjectID))
	if err != nil {
		return nil, err
	}
	var gid string
	for _, g := range groups {
		if g["id"] == *in.Name || g["name"] == *in.Name {
			if gid != "" && g["name"] == *in.Name {
				return nil, api.Conflict("Multiple security groups named %s were found.", *in.Name)
			}
			gid, _ = g["id"].(string)
		}
	}
	if gid == "" {
		return nil, api.NotFound("Security group %s not found for project %s.", *in.Name, c.project)
	}
	ports, err := s.serverPorts(r, i.ID)
	if err != nil {
		return nil, err
	}
	if len(ports) == 0 {
		return nil, api.BadRequest("Network requires port_security_enabled and subnet associated in order to apply security groups.")
	}
	changed := false
	for _, p := range ports {
		cur := []string{}
		sgs, _ := p["security_groups"].([]any)
		has := false
		for _, x := range sgs {
			id, _ := x.(string)
			if id == gid {
				has = true
				if !add {
					continue
				}
			}
			cur = append(cur, id)
		}
		if add && !has {
			cur = append(cur, gid)
		}
		if add == has {
			continue
		}
		changed = true
		pid, _ := p["id"].(string)
		if err := s.call(r, s.cfg.NetworkURL, "PUT", "/v2.0/ports/"+url.PathEscape(pid), map[string]any{"port": map[string]any{"security_groups": cur}}, nil, http.StatusOK, "Port "+pid+" not found."); err != nil {
			return nil, err
		}
	}
	if !changed && !add {
		return nil, api.NotFound("Security group %s not associated with the instance %s", *in.Name, i.ID)
	}
	// The server's own list of group names follows, so that its view
	// shows what its ports have (none: no security_groups key).
	var name string
	for _, g := range groups {
		if g["id"] == gid {
			name, _ = g["name"].(string)
		}
	}
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		cur, err := s.getInstance(r.Context(), tx, c, i.ID)
		if err != nil {
			return err
		}
		names := keep(fromJSON[[]string](cur.SecurityGroups), func(n string) bool { return n != name })
		if add {
			names = append(names, name)
		}
		_, err = tx.Exec(r.Context(), `UPDATE compute_instances SET security_groups = ? WHERE id = ?`, jsonText(names), i.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return accepted(), nil
}

// Floating IPs

func (s *Service) floatingView(r *http.Request, f map[string]any, pools map[string]string) map[string]any {
	out := map[string]any{"id": f["id"], "ip": f["floating_ip_address"], "fixed_ip": f["fixed_ip_address"], "instance_id": nil,
		"pool": pools[fmt.Sprint(f["floating_network_id"])]}
	if port, _ := f["port_id"].(string); port != "" {
		var p struct {
			Port map[string]any `json:"port"`
		}
		if s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/ports/"+url.PathEscape(port), nil, &p, http.StatusOK, "") == nil {
			if d, _ := p.Port["device_id"].(string); d != "" {
				out["instance_id"] = d
			}
		}
	}
	return out
}

// pools are the external networks, by id, named as Nova names pools.
func (s *Service) pools(r *http.Request) (map[string]string, []string, error) {
	var out struct {
		Networks []map[string]any `json:"networks"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/networks?router:external=True", nil, &out, http.StatusOK, "Networks not found."); err != nil {
		return nil, nil, err
	}
	byID := map[string]string{}
	var ids []string
	for _, n := range out.Networks {
		id, _ := n["id"].(string)
		name, _ := n["name"].(string)
		if name == "" {
			name = id
		}
		byID[id] = name
		ids = append(ids, id)
	}
	return byID, ids, nil
}

func (s *Service) listFloatingIPPools(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	byID, ids, err := s.pools(r)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, id := range ids {
		out = append(out, map[string]any{"name": byID[id]})
	}
	return api.JSON(http.StatusOK, map[string]any{"floating_ip_pools": out}), nil
}

func (s *Service) listFloatingIPs(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	pools, _, err := s.pools(r)
	if err != nil {
		return nil, err
	}
	var out struct {
		FloatingIPs []map[string]any `json:"floatingips"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/floatingips?project_id="+url.QueryEscape(s.caller(r).project), nil, &out, http.StatusOK, "Floating IPs not found."); err != nil {
		return nil, err
	}
	list := []map[string]any{}
	for _, f := range out.FloatingIPs {
		list = append(list, s.floatingView(r, f, pools))
	}
	return api.JSON(http.StatusOK, map[string]any{"floating_ips": list}), nil
}

func (s *Service) showFloatingIP(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	id := r.PathValue("fip_id")
	var out struct {
		FloatingIP map[string]any `json:"floatingip"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/floatingips/"+url.PathEscape(id), nil, &out, http.StatusOK, "Floating IP not found for ID "+id); err != nil {
		return nil, err
	}
	pools, _, err := s.pools(r)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"floating_ip": s.floatingView(r, out.FloatingIP, pools)}), nil
}

func (s *Service) createFloatingIP(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	var body struct {
		Pool *string `json:"pool"`
	}
	if r.ContentLength != 0 {
		if err := api.DecodeJSON(r, &body); err != nil {
			return nil, err
		}
	}
	pools, ids, err := s.pools(r)
	if err != nil {
		return nil, err
	}
	netID := ""
	for _, id := range ids {
		if body.Pool == nil || *body.Pool == pools[id] || *body.Pool == id {
			netID = id
			break
		}
	}
	if netID == "" {
		if body.Pool != nil {
			return nil, api.NotFound("Floating IP pool not found.")
		}
		return nil, api.NotFound("No more floating IPs available.")
	}
	var out struct {
		FloatingIP map[string]any `json:"floatingip"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": netID}}, &out, http.StatusCreated,
		"No more floating IPs in pool "+pools[netID]+".", statusErrors{http.StatusConflict: api.Forbidden("Maximum number of floating IPs exceeded")}); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"floating_ip": s.floatingView(r, out.FloatingIP, pools)}), nil
}

func (s *Service) deleteFloatingIP(r *http.Request) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	id := r.PathValue("fip_id")
	if err := s.call(r, s.cfg.NetworkURL, "DELETE", "/v2.0/floatingips/"+url.PathEscape(id), nil, nil, http.StatusNoContent, "Floating IP not found for ID "+id); err != nil {
		return nil, err
	}
	return accepted(), nil
}

// floatingAction serves addFloatingIp and removeFloatingIp (before 2.44).
func (s *Service) floatingAction(r *http.Request, arg json.RawMessage, add bool) (*api.Response, error) {
	if at(r, 44) {
		return nil, api.NotFound("The resource could not be found.")
	}
	var in struct {
		Address      *string `json:"address"`
		FixedAddress *string `json:"fixed_address"`
	}
	if err := api.DecodeBytes(arg, &in, true); err != nil {
		return nil, err
	}
	if in.Address == nil || net.ParseIP(*in.Address) == nil {
		return nil, api.BadRequest("Invalid input for field/attribute address.")
	}
	i, err := s.serverFor(r, "os_compute_api:servers:update")
	if err != nil {
		return nil, err
	}
	var fips struct {
		FloatingIPs []map[string]any `json:"floatingips"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/floatingips?floating_ip_address="+url.QueryEscape(*in.Address), nil, &fips, http.StatusOK, "Floating IP not found."); err != nil {
		return nil, err
	}
	if len(fips.FloatingIPs) == 0 {
		return nil, api.NotFound("floating IP not found")
	}
	fip := fips.FloatingIPs[0]
	fid, _ := fip["id"].(string)
	update := map[string]any{"port_id": nil}
	if add {
		ports, err := s.serverPorts(r, i.ID)
		if err != nil {
			return nil, err
		}
		var portID, fixed string
		for _, p := range ports {
			ips, _ := p["fixed_ips"].([]any)
			for _, x := range ips {
				ip, _ := x.(map[string]any)["ip_address"].(string)
				if portID == "" && (in.FixedAddress == nil || *in.FixedAddress == ip) && net.ParseIP(ip).To4() != nil {
					portID, _ = p["id"].(string)
					fixed = ip
				}
			}
		}
		if portID == "" {
			if in.FixedAddress != nil {
				return nil, api.BadRequest("Specified fixed address not assigned to instance")
			}
			return nil, api.BadRequest("No nw_info cache associated with instance")
		}
		update = map[string]any{"port_id": portID, "fixed_ip_address": fixed}
		// Nova answers any refusal of the association (say, the fixed
		// IP has a floating IP already: a 409 from the networking
		// service) with a 400.
		refused := api.BadRequest("Unable to associate floating IP %s to fixed IP %s for instance %s.", *in.Address, fixed, i.ID)
		if err := s.call(r, s.cfg.NetworkURL, "PUT", "/v2.0/floatingips/"+url.PathEscape(fid), map[string]any{"floatingip": update}, nil,
			http.StatusOK, "Floating IP not found.", statusErrors{http.StatusConflict: refused, http.StatusBadRequest: refused}); err != nil {
			return nil, err
		}
		return accepted(), nil
	}
	// Only a floating IP associated with one of this server's ports is
	// disassociated from it; one on another server's port is a 409.
	port, _ := fip["port_id"].(string)
	mine := false
	if port != "" {
		ports, err := s.serverPorts(r, i.ID)
		if err != nil {
			return nil, err
		}
		for _, p := range ports {
			mine = mine || p["id"] == port
		}
	}
	if !mine {
		return nil, api.Conflict("Floating IP %s is not associated with instance %s.", *in.Address, i.ID)
	}
	if err := s.call(r, s.cfg.NetworkURL, "PUT", "/v2.0/floatingips/"+url.PathEscape(fid), map[string]any{"floatingip": update}, nil, http.StatusOK, "Floating IP not found."); err != nil {
		return nil, err
	}
	return accepted(), nil
}
