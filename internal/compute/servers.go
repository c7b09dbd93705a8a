package compute

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// serverView renders a server. full is show/detail; minimal views (the
// update and rebuild answers before 2.75) leave out the extension
// attributes, as Nova's view builder does.
type viewOpts struct {
	full   bool
	groups bool // server_groups (2.71, show/update/rebuild only)
	// memo caches what is the same for every server of one request, so
	// long detail listings do not evaluate policy per server.
	memo *viewMemo
}

// viewMemo holds per-request answers: the caller, policy decisions by
// project, and host states.
type viewMemo struct {
	caller caller
	allow  map[string]bool   // action + "\x00" + project -> allowed
	hosts  map[string]string // host -> host_status
	// volumes are the servers' volume mappings, loaded for the page.
	volumes map[string][]blockDevice
}

func (s *Service) memo(r *http.Request, o *viewOpts) *viewMemo {
	if o.memo == nil {
		o.memo = &viewMemo{caller: s.caller(r), allow: map[string]bool{}, hosts: map[string]string{}}
	}
	return o.memo
}

func (m *viewMemo) can(s *Service, r *http.Request, action, project, user string) bool {
	key := action + "\x00" + project + "\x00" + user
	v, ok := m.allow[key]
	if !ok {
		v = s.can(r, action, projectTarget(project, user))
		m.allow[key] = v
	}
	return v
}

func (s *Service) serverView(r *http.Request, i instance, md map[string]string, tags []string, o viewOpts) map[string]any {
	m := s.memo(r, &o)
	c := m.caller
	st := status(i.VMState, i.task())
	base := s.baseURL(r)
	// Sized for the detail view's 45 or so keys: growing the map was a
	// quarter of the view's cost in a 1,000-server listing.
	out := make(map[string]any, 48)
	out["id"], out["name"], out["status"], out["tenant_id"], out["user_id"] = i.ID, i.Name, st, i.ProjectID, i.UserID
	out["metadata"], out["hostId"] = md, hostID(i.ProjectID, i.host())
	out["created"], out["updated"] = isoZ(parseTime(i.CreatedAt)), isoZ(parseTime(i.UpdatedAt))
	out["addresses"] = addressesView(fromJSON[map[string][]Address](i.Addresses), o.full || at(r, 75))
	out["accessIPv4"], out["accessIPv6"] = i.AccessIPv4, i.AccessIPv6
	out["links"] = s.links(r, "servers", i.ID)
	out["OS-DCF:diskConfig"] = i.DiskConfig
	if i.ImageRef == "" {
		out["image"] = ""
	} else {
		out["image"] = map[string]any{"id": i.ImageRef, "links": []api.Link{{Rel: "bookmark", Href: base + "/images/" + i.ImageRef}}}
	}
	f := i.flavorSpec()
	if at(r, 47) {
		fv := map[string]any{"vcpus": f.VCPUs, "ram": f.MemoryMB, "disk": f.RootGB, "ephemeral": f.EphemeralG, "swap": f.SwapMB, "original_name": f.Name}
		if m.can(s, r, "os_compute_api:os-flavor-extra-specs:index", c.project, c.user) {
			specs := f.ExtraSpecs
			if specs == nil {
				specs = map[string]string{}
			}
			fv["extra_specs"] = specs
		}
		out["flavor"] = fv
	} else {
		out["flavor"] = map[string]any{"id": i.FlavorID, "links": []api.Link{{Rel: "bookmark", Href: base + "/flavors/" + i.FlavorID}}}
	}
	switch st {
	case "ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING":
		out["progress"] = i.Progress
		if st == "BUILD" || st == "REBUILD" || st == "RESIZE" {
			out["progress"] = 0
		}
	case "ERROR", "DELETED":
		if i.Fault != nil {
			fr := fromJSON[faultRecord](*i.Fault)
			fv := map[string]any{"code": fr.Code, "message": fr.Message, "created": isoZ(parseTime(fr.Created))}
			if c.admin || fr.Code != 500 {
				fv["details"] = fr.Details
			}
			if fr.Code == 500 && !c.admin {
				delete(fv, "details")
			}
			out["fault"] = fv
		}
	}
	if at(r, 9) {
		out["locked"] = i.Locked
	}
	if at(r, 73) {
		out["locked_reason"] = i.LockedReason
	}
	if at(r, 19) {
		out["description"] = i.Description
	}
	if at(r, 26) {
		if tags == nil {
			tags = []string{}
		}
		out["tags"] = tags
	}
	if at(r, 63) {
		out["trusted_image_certificates"] = nil
	}
	if o.groups && at(r, 71) {
		g := []string{}
		if i.ServerGroupID != nil {
			g = append(g, *i.ServerGroupID)
		}
		out["server_groups"] = g
	}
	if !o.full && !at(r, 75) {
		return out
	}
	out["key_name"] = i.KeyName
	cd := ""
	if i.ConfigDrive {
		cd = "True"
	}
	out["config_drive"] = cd
	az := ""
	if i.AZ != nil {
		az = *i.AZ
	}
	out["OS-EXT-AZ:availability_zone"] = az
	out["OS-EXT-STS:vm_state"] = i.VMState
	out["OS-EXT-STS:task_state"] = i.TaskState
	out["OS-EXT-STS:power_state"] = i.PowerState
	out["OS-SRV-USG:launched_at"] = nullTime(i.LaunchedAt, isoMicro)
	out["OS-SRV-USG:terminated_at"] = nullTime(i.TerminatedAt, isoMicro)
	out["os-extended-volumes:volumes_attached"] = volumesAttachedView(r, m.volumes[i.ID])
	if sgs := fromJSON[[]string](i.SecurityGroups); len(sgs) > 0 {
		list := make([]map[string]string, 0, len(sgs))
		for _, g := range sgs {
			list = append(list, map[string]string{"name": g})
		}
		out["security_groups"] = list
	}
	if m.can(s, r, "os_compute_api:os-extended-server-attributes", i.ProjectID, i.UserID) {
		out["OS-EXT-SRV-ATTR:host"] = i.Host
		out["OS-EXT-SRV-ATTR:hypervisor_hostname"] = i.Node
		out["OS-EXT-SRV-ATTR:instance_name"] = i.instanceName()
		if at(r, 3) {
			out["OS-EXT-SRV-ATTR:reservation_id"] = i.ReservationID
			out["OS-EXT-SRV-ATTR:launch_index"] = i.LaunchIndex
			out["OS-EXT-SRV-ATTR:hostname"] = i.Hostname
			out["OS-EXT-SRV-ATTR:kernel_id"] = ""
			out["OS-EXT-SRV-ATTR:ramdisk_id"] = ""
			out["OS-EXT-SRV-ATTR:root_device_name"] = "/dev/vda"
			out["OS-EXT-SRV-ATTR:user_data"] = i.UserData
		}
	}
	if at(r, 16) && m.can(s, r, "os_compute_api:servers:show:host_status", i.ProjectID, i.UserID) {
		hs, ok := m.hosts[i.host()]
		if !ok {
			hs = s.hostStatus(r, i.host())
			m.hosts[i.host()] = hs
		}
		out["host_status"] = hs
	}
	return out
}

// hostStatus is UP, DOWN, MAINTENANCE (disabled) or "" without a host.
func (s *Service) hostStatus(r *http.Request, name string) string {
	if name == "" {
		return ""
	}
	h, err := s.hostByName(r.Context(), s.db, name)
	if err != nil {
		return "UNKNOWN"
	}
	return s.hostState(h)
}

// hostState is a known host's host_status.
func (s *Service) hostState(h host) string {
	switch {
	case !s.up(h):
		return "DOWN"
	case h.Disabled:
		return "MAINTENANCE"
	}
	return "UP"
}

// addressesView renders a server's addresses as Nova's "addresses".
// Nova extends each address with OS-EXT-IPS:type and OS-EXT-IPS-MAC:mac_addr
// in show and detail; the update and rebuild responses before 2.75 carry
// only addr and version (its view builder's extend_address=False).
func addressesView(in map[string][]Address, extend bool) map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for net, addrs := range in {
		list := make([]map[string]any, 0, len(addrs))
		for _, a := range addrs {
			if !extend {
				list = append(list, map[string]any{"addr": a.Addr, "version": a.Version})
				continue
			}
			typ := a.Type
			if typ == "" {
				typ = "fixed"
			}
			list = append(list, map[string]any{"addr": a.Addr, "version": a.Version, "OS-EXT-IPS-MAC:mac_addr": a.MAC, "OS-EXT-IPS:type": typ})
		}
		out[net] = list
	}
	return out
}

// showServer answers GET /servers/{id}.
func (s *Service) showServer(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:servers:show")
	if err != nil {
		return nil, err
	}
	return s.serverResponse(r, http.StatusOK, i, viewOpts{full: true, groups: true})
}

func (s *Service) serverResponse(r *http.Request, status int, i instance, o viewOpts) (*api.Response, error) {
	md, err := metadataOf(r.Context(), s.db, i.ID)
	if err != nil {
		return nil, err
	}
	var tags []string
	if at(r, 26) {
		if tags, err = tagsOf(r.Context(), s.db, i.ID); err != nil {
			return nil, err
		}
	}
	bdms, err := blockDevicesOf(r.Context(), s.db, i.ID)
	if err != nil {
		return nil, err
	}
	s.memo(r, &o).volumes = map[string][]blockDevice{i.ID: bdms}
	return api.JSON(status, map[string]any{"server": s.serverView(r, i, md, tags, o)}), nil
}

// serverFor loads the server of the request's path and enforces action.
func (s *Service) serverFor(r *http.Request, action string) (instance, error) {
	i, err := s.getInstance(r.Context(), s.db, s.caller(r), r.PathValue("server_id"))
	if err != nil {
		return i, err
	}
	return i, s.authorize(r, action, projectTarget(i.ProjectID, i.UserID))
}

// List

// serverSortKeys maps Nova's sort keys to columns.
var serverSortKeys = map[string]string{
	"created_at": "created_at", "updated_at": "updated_at", "display_name": "name", "uuid": "id", "vm_state": "vm_state",
	"task_state": "task_state", "power_state": "power_state", "launched_at": "launched_at", "terminated_at": "terminated_at",
	"host": "host", "node": "node", "key_name": "key_name", "project_id": "project_id", "user_id": "user_id",
	"availability_zone": "availability_zone", "hostname": "hostname", "image_ref": "image_ref",
	"display_description": "description", "access_ip_v4": "access_ipv4", "access_ip_v6": "access_ipv6",
	"progress": "progress", "launch_index": "launch_index", "config_drive": "config_drive", "locked_by": "locked_by",
	"instance_type_id": "flavor_id", "id": "seq", "auto_disk_config": "disk_config", "kernel_id": "id", "ramdisk_id": "id",
	"root_device_name": "id",
}

// serverListParams are the query parameters Nova's list accepts; from
// 2.75 anything else is a 400.
var serverListParams = map[string]bool{
	"user_id": true, "project_id": true, "tenant_id": true, "launch_index": true, "image_ref": true, "image": true,
	"kernel_id": true, "ramdisk_id": true, "hostname": true, "key_name": true, "power_state": true, "vm_state": true,
	"task_state": true, "host": true, "node": true, "flavor": true, "reservation_id": true, "launched_at": true,
	"terminated_at": true, "availability_zone": true, "name": true, "display_name": true, "description": true,
	"display_description": true, "locked_by": true, "uuid": true, "root_device_name": true, "config_drive": true,
	"access_ip_v4": true, "access_ip_v6": true, "auto_disk_config": true, "progress": true, "sort_key": true,
	"sort_dir": true, "all_tenants": true, "deleted": true, "status": true, "changes-since": true, "ip": true, "ip6": true,
	"created_at": true, "block_device_mapping": true, "services": true, "metadata": true, "system_metadata": true,
	"info_cache": true, "security_groups": true, "pci_devices": true, "limit": true, "marker": true, "tags": true,
	"tags-any": true, "not-tags": true, "not-tags-any": true, "changes-before": true, "locked": true,
}

func (s *Service) listServers(r *http.Request) (*api.Response, error) { return s.serverList(r, false) }
func (s *Service) listServersDetail(r *http.Request) (*api.Response, error) {
	return s.serverList(r, true)
}

func (s *Service) serverList(r *http.Request, detail bool) (*api.Response, error) {
	c := s.caller(r)
	action := "os_compute_api:servers:index"
	if detail {
		action = "os_compute_api:servers:detail"
	}
	if err := s.authorize(r, action, projectTarget(c.project, c.user)); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	if at(r, 75) {
		for k := range q {
			if !serverListParams[k] {
				return nil, api.BadRequest("Invalid input for query parameters %s. Value: %s. Additional properties are not allowed ('%s' was unexpected)", k, q.Get(k), k)
			}
		}
	}
	admin := s.can(r, action+":get_all_tenants", projectTarget(c.project, c.user))
	where := []string{}
	var args []any
	allTenants := false
	if v, ok := q["all_tenants"]; ok {
		b, valid := queryBool(v[0])
		if v[0] == "" {
			b, valid = true, true
		}
		if !valid {
			return nil, api.BadRequest("Invalid input for query parameters all_tenants. Value: %s.", v[0])
		}
		allTenants = b && admin
	}
	project := c.project
	// As Nova: project_id / tenant_id narrow an all_tenants listing and
	// are ignored without it (the caller's own project is listed).
	if allTenants {
		for _, k := range []string{"project_id", "tenant_id"} {
			if v := q.Get(k); v != "" {
				project, allTenants = v, false
			}
		}
	}
	if !allTenants {
		where = append(where, "project_id = ?")
		args = append(args, project)
	}
	deletedToo := false
	if admin {
		if v := q.Get("deleted"); v != "" {
			b, _ := queryBool(v)
			deletedToo = b
		}
	}
	changesSince := q.Get("changes-since")
	changesBefore := ""
	if at(r, 66) {
		changesBefore = q.Get("changes-before")
	}
	for _, pair := range []struct{ param, val, op string }{{"changes-since", changesSince, ">="}, {"changes-before", changesBefore, "<="}} {
		if pair.val == "" {
			continue
		}
		t, err := parseISO(pair.val)
		if err != nil {
			return nil, api.BadRequest("Invalid input for query parameters %s. Value: %s. '%s' is not a 'date-time'", pair.param, pair.val, pair.val)
		}
		where = append(where, "updated_at "+pair.op+" ?")
		args = append(args, store.FormatTime(t))
	}
	if changesSince != "" || changesBefore != "" {
		deletedToo = true // Nova shows servers deleted in the window
	}
	statuses := q["status"]
	for _, st := range statuses {
		if !knownStatuses[strings.ToUpper(st)] {
			if at(r, 38) {
				return nil, api.BadRequest("Invalid status value")
			}
			return api.JSON(http.StatusOK, map[string]any{"servers": []any{}}), nil
		}
		if strings.EqualFold(st, "DELETED") && admin {
			deletedToo = true
		}
	}

	if !deletedToo {
		where = append(where, "deleted = 0")
	}
	for param, col := range map[string]string{"image": "image_ref", "flavor": "flavor_id", "reservation_id": "reservation_id",
		"availability_zone": "availability_zone", "key_name": "key_name", "host": "host", "node": "node", "user_id": "user_id",
		"vm_state": "vm_state", "task_state": "task_state", "hostname": "hostname", "uuid": "id"} {
		v := q.Get(param)
		if v == "" {
			continue
		}
		adminOnly := map[string]bool{"host": true, "node": true, "user_id": true, "vm_state": true, "task_state": true, "hostname": true, "key_name": true, "uuid": true, "availability_zone": true}
		if adminOnly[param] && !admin {
			continue
		}
		if param == "image" || param == "flavor" {
			v = v[strings.LastIndex(v, "/")+1:]
		}
		where = append(where, col+" = ?")
		args = append(args, v)
	}
	if v, ok := q["locked"]; ok && at(r, 73) {
		b, valid := queryBool(v[0])
		if !valid {
			return nil, api.BadRequest("Unrecognized value '%s', acceptable values are: '1', 't', 'true', 'on', 'y', 'yes', '0', 'f', 'false', 'off', 'n', 'no'", v[0])
		}
		where = append(where, "locked = ?")
		args = append(args, boolInt(b))
	}
	if len(statuses) > 0 {
		// A superset in SQL, so the index does the narrowing; the exact
		// status (which also depends on task_state) is checked per row.
		if vms := vmStatesOf(statuses); vms != nil {
			where = append(where, "vm_state IN ("+placeholders(len(vms))+")")
			for _, v := range vms {
				args = append(args, v)
			}
		}
	}
	if at(r, 26) {
		if cond, targs := parseTagQuery(q).where(); cond != "" {
			where = append(where, cond)
			args = append(args, targs...)
		}
	}
	// Sorting.
	keys, dirs := q["sort_key"], q["sort_dir"]
	var order []sortCol
	for n, k := range keys {
		col, ok := serverSortKeys[k]
		if !ok {
			if !admin && (k == "host" || k == "node") {
				return nil, api.Forbidden("Only administrators can sort servers by %s", k)
			}
			return nil, api.BadRequest("Invalid input for query parameters sort_key. Value: %s.", k)
		}
		if !admin && (k == "host" || k == "node") {
			return nil, api.Forbidden("Only administrators can sort servers by %s", k)
		}
		desc := true
		if n < len(dirs) {
			switch strings.ToLower(dirs[n]) {
			case "asc":
				desc = false
			case "desc":
			default:
				return nil, api.BadRequest("Invalid input for query parameters sort_dir. Value: %s.", dirs[n])
			}
		}
		order = append(order, sortCol{col: col, desc: desc})
	}
	// seq is unique, so the order is total and a marker is one place in it.
	order = append(order, sortCol{col: "created_at", desc: true}, sortCol{col: "seq", desc: true})
	p, err := page(r)
	if err != nil {
		return nil, err
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n == 0 {
		// Nova lists no servers for limit=0 (its query's LIMIT 0);
		// Tempest's test_list_servers_filter_by_zero_limit checks it.
		return api.JSON(http.StatusOK, map[string]any{"servers": []any{}}), nil
	}
	// Filters SQL cannot take: regular expressions, and the exact status.
	var nameRE *regexp.Regexp
	if n := q.Get("name"); n != "" {
		if nameRE, err = regexp.Compile(n); err != nil {
			nameRE = regexp.MustCompile(regexp.QuoteMeta(n))
		}
	}
	var ipRE, ip6RE *regexp.Regexp
	if v := q.Get("ip"); v != "" {
		ipRE, _ = regexp.Compile(v)
	}
	if v := q.Get("ip6"); v != "" && (at(r, 5) || admin) {
		ip6RE, _ = regexp.Compile(v)
	}
	rowFilter := len(statuses) > 0 || nameRE != nil || ipRE != nil || ip6RE != nil
	keep := func(i instance) bool {
		if len(statuses) > 0 {
			st := status(i.VMState, i.task())
			match := false
			for _, want := range statuses {
				if strings.EqualFold(want, st) {
					match = true
				}
			}
			if !match {
				return false
			}
		}
		if nameRE != nil && !nameRE.MatchString(i.Name) {
			return false
		}
		if ipRE != nil || ip6RE != nil {
			if !matchIP(fromJSON[map[string][]Address](i.Addresses), ipRE, ip6RE) {
				return false
			}
		}
		return true
	}
	if p.Marker != "" {
		// The marker must be a server the same query lists, as before
		// paging moved into SQL; the page then starts after its place.
		m, err := store.QueryOne(r.Context(), s.db, scanInstance, `SELECT `+instanceCols+` FROM compute_instances WHERE `+
			strings.Join(slices.Concat(where, []string{"id = ?"}), " AND "), slices.Concat(args, []any{p.Marker})...)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !keep(m)) {
			return nil, api.BadRequest("marker [%s] not found", p.Marker)
		}
		if err != nil {
			return nil, fmt.Errorf("list servers: marker %s: %w", p.Marker, err)
		}
		cond, margs, err := s.afterMarker(r.Context(), order, m.ID)
		if err != nil {
			return nil, err
		}
		where = append(where, cond)
		args = append(args, margs...)
	}
	sqlWhere := "1 = 1"
	if len(where) > 0 {
		sqlWhere = strings.Join(where, " AND ")
	}
	terms := make([]string, len(order))
	for n, o := range order {
		terms[n] = o.col + " ASC"
		if o.desc {
			terms[n] = o.col + " DESC"
		}
	}
	query := `SELECT ` + instanceCols + ` FROM compute_instances WHERE ` + sqlWhere + ` ORDER BY ` + strings.Join(terms, ", ")
	if !rowFilter {
		query += fmt.Sprintf(" LIMIT %d", p.Limit)
	}
	items, err := queryPage(r.Context(), s.db, query, args, p.Limit, keep)
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	out := make([]map[string]any, 0, len(items))
	if detail {
		ids := make([]string, len(items))
		for n, i := range items {
			ids[n] = i.ID
		}
		opts := viewOpts{full: true}
		m := s.memo(r, &opts)
		var mdMap map[string]map[string]string
		if mdMap, err = metadataOfServers(r.Context(), s.db, ids); err != nil {
			return nil, err
		}
		var tagMap map[string][]string
		if at(r, 26) {
			if tagMap, err = tagsOfServers(r.Context(), s.db, ids); err != nil {
				return nil, err
			}
		}
		if at(r, 16) {
			if err := s.memoHostStatus(r.Context(), m, items); err != nil {
				return nil, err
			}
		}
		if m.volumes, err = blockDevicesOfServers(r.Context(), s.db, ids); err != nil {
			return nil, err
		}
		for _, i := range items {
			md := mdMap[i.ID]
			if md == nil {
				md = map[string]string{}
			}
			out = append(out, s.serverView(r, i, md, tagMap[i.ID], opts))
		}
	} else {
		for _, i := range items {
			out = append(out, map[string]any{"id": i.ID, "name": i.Name, "links": s.links(r, "servers", i.ID)})
		}
	}
	body := map[string]any{"servers": out}
	if len(items) > 0 {
		if l := s.nextLinks(r, p, len(items), items[len(items)-1].ID); l != nil {
			body["servers_links"] = l
		}
	}
	return api.JSON(http.StatusOK, body), nil
}

// queryPage reads servers in the query's order and keeps the first limit
// that keep accepts. Rows are read as they come, so a page costs the rows
// up to its end, not every row that matches.
func queryPage(ctx context.Context, q store.Querier, query string, args []any, limit int, keep func(instance) bool) ([]instance, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []instance
	for len(out) < limit && rows.Next() {
		i, err := scanInstance(rows)
		if err != nil {
			return nil, err
		}
		if keep(i) {
			out = append(out, i)
		}
	}
	return out, rows.Err()
}

// sortCol is one term of a server list's ORDER BY.
type sortCol struct {
	col  string
	desc bool
}

// afterMarker returns the condition for the servers that follow server id
// in order: (k1 after m1) OR (k1 = m1 AND ((k2 after m2) OR …)), with the
// first term also as a plain bound so the index can seek to the marker
// rather than read every row before it. NULLs are where ORDER BY puts them
// on each engine: first in ascending order on SQLite, last on PostgreSQL.
func (s *Service) afterMarker(ctx context.Context, order []sortCol, id string) (string, []any, error) {
	cols := make([]string, len(order))
	for n, o := range order {
		cols[n] = o.col
	}
	vals := make([]any, len(order))
	ptrs := make([]any, len(order))
	for n := range vals {
		ptrs[n] = &vals[n]
	}
	if err := s.db.QueryRow(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM compute_instances WHERE id = ?`, id).Scan(ptrs...); err != nil {
		return "", nil, fmt.Errorf("list servers: marker %s: %w", id, err)
	}
	nullsLast := s.db.Dialect() == store.Postgres
	var args []any
	// after is "o.col comes after v"; on its own it needs args in the
	// order its "?" appear, so each call appends them.
	after := func(o sortCol, v any, orEqual bool) string {
		greater := !o.desc
		// Whether NULL is on the side of the rows that come after.
		nullAfter := greater == nullsLast
		if v == nil {
			switch {
			case nullAfter && orEqual:
				return o.col + " IS NULL"
			case nullAfter:
				return "1 = 0" // the marker is at the end of this term
			case orEqual:
				return "1 = 1"
			}
			return o.col + " IS NOT NULL"
		}
		op := "<"
		if greater {
			op = ">"
		}
		if orEqual {
			op += "="
		}
		args = append(args, v)
		if nullAfter {
			return "(" + o.col + " " + op + " ? OR " + o.col + " IS NULL)"
		}
		return o.col + " " + op + " ?"
	}
	var nested func(n int) string
	nested = func(n int) string {
		if n == len(order)-1 {
			return after(order[n], vals[n], false)
		}
		first := after(order[n], vals[n], false)
		eq := order[n].col + " IS NULL"
		if vals[n] != nil {
			eq = order[n].col + " = ?"
			args = append(args, vals[n])
		}
		return "(" + first + " OR (" + eq + " AND " + nested(n+1) + "))"
	}
	bound := after(order[0], vals[0], true)
	return bound + " AND " + nested(0), args, nil
}

func matchIP(addrs map[string][]Address, v4, v6 *regexp.Regexp) bool {
	for _, list := range addrs {
		for _, a := range list {
			if v4 != nil && a.Version == 4 && v4.MatchString(a.Addr) {
				return true
			}
			if v6 != nil && a.Version == 6 && v6.MatchString(a.Addr) {
				return true
			}
		}
	}
	return false
}

// metadataOfServers loads the metadata of a page of servers in one query.
func metadataOfServers(ctx context.Context, q store.Querier, ids []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT instance_id, key, value FROM compute_instance_metadata
		WHERE instance_id IN (`+placeholders(len(ids))+`)`, anys(ids)...)
	if err != nil {
		return nil, fmt.Errorf("list metadata: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, k, v string
		if err := rows.Scan(&id, &k, &v); err != nil {
			return nil, fmt.Errorf("list metadata: %w", err)
		}
		if out[id] == nil {
			out[id] = map[string]string{}
		}
		out[id][k] = v
	}
	return out, rows.Err()
}

// tagsOfServers loads the tags of a page of servers in one query.
func tagsOfServers(ctx context.Context, q store.Querier, ids []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT instance_id, tag FROM compute_instance_tags
		WHERE instance_id IN (`+placeholders(len(ids))+`) ORDER BY instance_id, tag`, anys(ids)...)
	if err != nil {
		return nil, fmt.Errorf("list tags: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, t string
		if err := rows.Scan(&id, &t); err != nil {
			return nil, fmt.Errorf("list tags: %w", err)
		}
		out[id] = append(out[id], t)
	}
	return out, rows.Err()
}

// memoHostStatus reads the hosts of a page of servers in one query into
// the view memo, so host_status costs one query per page, not per host.
func (s *Service) memoHostStatus(ctx context.Context, m *viewMemo, items []instance) error {
	var names []string
	for _, i := range items {
		if h := i.host(); h != "" {
			if _, ok := m.hosts[h]; !ok {
				m.hosts[h] = "UNKNOWN" // unless its row is found below
				names = append(names, h)
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	hosts, err := store.QueryAll(ctx, s.db, scanHost, `SELECT `+hostCols+` FROM compute_hosts WHERE host IN (`+placeholders(len(names))+`)`, anys(names)...)
	if err != nil {
		return fmt.Errorf("list servers: hosts: %w", err)
	}
	for _, h := range hosts {
		m.hosts[h.Host] = s.hostState(h)
	}
	return nil
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for n, v := range ss {
		out[n] = v
	}
	return out
}

// tagQuery is the tags, tags-any, not-tags and not-tags-any filters (2.26).
type tagQuery struct{ all, any, notAll, notAny []string }

func parseTagQuery(q map[string][]string) *tagQuery {
	split := func(k string) []string {
		v := ""
		if vs := q[k]; len(vs) > 0 {
			v = vs[0]
		}
		if v == "" {
			return nil
		}
		return strings.Split(v, ",")
	}
	t := &tagQuery{all: split("tags"), any: split("tags-any"), notAll: split("not-tags"), notAny: split("not-tags-any")}
	if t.all == nil && t.any == nil && t.notAll == nil && t.notAny == nil {
		return nil
	}
	return t
}

// where is the filter as a condition on compute_instances, so it narrows
// the rows in SQL and paging stays there: every tag of tags, at least one
// of tags-any, not every one of not-tags, none of not-tags-any. "" for
// no filter.
func (t *tagQuery) where() (string, []any) {
	if t == nil {
		return "", nil
	}
	has := func(tags []string) string {
		return `EXISTS (SELECT 1 FROM compute_instance_tags t WHERE t.instance_id = compute_instances.id AND t.tag IN (` +
			placeholders(len(tags)) + `))`
	}
	var conds []string
	var args []any
	allOf := func(tags []string) string {
		parts := make([]string, len(tags))
		for n, tag := range tags {
			parts[n] = has([]string{tag})
			args = append(args, tag)
		}
		return "(" + strings.Join(parts, " AND ") + ")"
	}
	if len(t.all) > 0 {
		conds = append(conds, allOf(t.all))
	}
	if len(t.any) > 0 {
		conds = append(conds, has(t.any))
		args = append(args, anys(t.any)...)
	}
	if len(t.notAll) > 0 {
		conds = append(conds, "NOT "+allOf(t.notAll))
	}
	if len(t.notAny) > 0 {
		conds = append(conds, "NOT "+has(t.notAny))
		args = append(args, anys(t.notAny)...)
	}
	return strings.Join(conds, " AND "), args
}

// Create

type serverCreate struct {
	Server *struct {
		Name             *string                    `json:"name"`
		ImageRef         *string                    `json:"imageRef"`
		FlavorRef        json.RawMessage            `json:"flavorRef"`
		Networks         json.RawMessage            `json:"networks"`
		KeyName          *string                    `json:"key_name"`
		UserData         *string                    `json:"user_data"`
		Metadata         map[string]json.RawMessage `json:"metadata"`
		SecurityGroups   []map[string]string        `json:"security_groups"`
		AvailabilityZone *string                    `json:"availability_zone"`
		MinCount         *flexInt                   `json:"min_count"`
		MaxCount         *flexInt                   `json:"max_count"`
		ReturnResID      any                        `json:"return_reservation_id"`
		ConfigDrive      any                        `json:"config_drive"`
		DiskConfig       *string                    `json:"OS-DCF:diskConfig"`
		AccessIPv4       *string                    `json:"accessIPv4"`
		AccessIPv6       *string                    `json:"accessIPv6"`
		AdminPass        *string                    `json:"adminPass"`
		Description      api.Optional[string]       `json:"description"`
		Tags             []string                   `json:"tags"`
		Host             *string                    `json:"host"`
		HypervisorHost   *string                    `json:"hypervisor_hostname"`
		Personality      []map[string]string        `json:"personality"`
		BDM              []map[string]any           `json:"block_device_mapping_v2"`
		BDMLegacy        []map[string]any           `json:"block_device_mapping"`
		TrustedCerts     []string                   `json:"trusted_image_certificates"`
	} `json:"server"`
	Hints    map[string]any `json:"os:scheduler_hints"`
	HintsAlt map[string]any `json:"OS-SCH-HNT:scheduler_hints"`
}

// maxUserData is the largest user_data Nova accepts, base64 encoded.
const maxUserData = 65535

var tagPattern = regexp.MustCompile(`^[^,/]{1,60}$`)

// refID takes the id out of a reference that may be a URL.
func refID(ref string) string {
	ref = strings.TrimRight(ref, "/")
	return ref[strings.LastIndex(ref, "/")+1:]
}

func genPassword() string {
	const chars = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for n := range b {
		b[n] = chars[int(b[n])%len(chars)]
	}
	return string(b)
}

func genReservationID() string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	for n := range b {
		b[n] = chars[int(b[n])%len(chars)]
	}
	return "r-" + string(b)
}

func (s *Service) createServer(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	var body serverCreate
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.Server
	if in == nil {
		return nil, api.BadRequest("Invalid input for field/attribute server. 'server' is a required property")
	}
	if err := s.authorize(r, "os_compute_api:servers:create", projectTarget(c.project, c.user)); err != nil {
		return nil, err
	}
	if in.Name == nil {
		return nil, api.BadRequest("Invalid input for field/attribute server. 'name' is a required property")
	}
	name := *in.Name
	if name == "" || len([]rune(name)) > 255 || strings.TrimSpace(name) == "" {
		return nil, api.BadRequest("Invalid input for field/attribute name. Value: %s. '%s' must be between 1 and 255 characters and not only spaces", name, name)
	}
	if len(in.FlavorRef) == 0 {
		return nil, api.BadRequest("Invalid input for field/attribute server. 'flavorRef' is a required property")
	}
	var flavorRef string
	if err := json.Unmarshal(in.FlavorRef, &flavorRef); err != nil {
		var n json.Number
		if err := json.Unmarshal(in.FlavorRef, &n); err != nil {
			return nil, api.BadRequest("Invalid input for field/attribute flavorRef. Value: %s.", in.FlavorRef)
		}
		flavorRef = n.String()
	}
	if flavorRef == "" {
		return nil, api.BadRequest("Invalid input for field/attribute flavorRef. Value: . '' is too short")
	}
	// Version-gated fields.
	if in.Description.Set && !at(r, 19) {
		return nil, api.BadRequest("Invalid input for field/attribute server. Additional properties are not allowed ('description' was unexpected)")
	}
	if in.Tags != nil && !at(r, 52) {
		return nil, api.BadRequest("Invalid input for field/attribute server. Additional properties are not allowed ('tags' was unexpected)")
	}
	if (in.Host != nil || in.HypervisorHost != nil) && !at(r, 74) {
		return nil, api.BadRequest("Invalid input for field/attribute server. Additional properties are not allowed ('host' was unexpected)")
	}
	if in.Personality != nil && at(r, 57) {
		return nil, api.BadRequest("Invalid input for field/attribute server. Additional properties are not allowed ('personality' was unexpected)")
	}
	if in.TrustedCerts != nil && !at(r, 63) {
		return nil, api.BadRequest("Invalid input for field/attribute server. Additional properties are not allowed ('trusted_image_certificates' was unexpected)")
	}
	if len(in.BDMLegacy) > 0 {
		return nil, api.BadRequest("Block Device Mapping is Invalid: the legacy block_device_mapping is not supported; use block_device_mapping_v2.")
	}
	plan, err := parseBlockDevices(in.BDM)
	if err != nil {
		return nil, err
	}
	var description *string
	if in.Description.Set && !in.Description.Null {
		if len([]rune(in.Description.Value)) > 255 {
			return nil, api.BadRequest("Invalid input for field/attribute description. Value: %s. is too long", in.Description.Value)
		}
		description = &in.Description.Value
	}
	tags := []string{}
	if in.Tags != nil {
		if len(in.Tags) > 50 {
			return nil, api.BadRequest("Invalid input for field/attribute tags. is too long")
		}
		seen := map[string]bool{}
		for _, t := range in.Tags {
			if !tagPattern.MatchString(t) {
				return nil, api.BadRequest("Invalid input for field/attribute tags. Value: %s. '%s' does not match '^[^,/]*$'", t, t)
			}
			if !seen[t] {
				seen[t] = true
				tags = append(tags, t)
			}
		}
	}
	// Counts.
	minCount, maxCount := 1, 1
	if in.MinCount != nil {
		v, err := intField("min_count", *in.MinCount, 1, dbMaxInt)
		if err != nil {
			return nil, err
		}
		minCount = v
	}
	if in.MaxCount != nil {
		v, err := intField("max_count", *in.MaxCount, 1, dbMaxInt)
		if err != nil {
			return nil, err
		}
		maxCount = v
	} else if in.MinCount != nil {
		maxCount = minCount
	}
	if minCount > maxCount {
		return nil, api.BadRequest("min_count must be <= max_count")
	}
	returnResID := false
	switch v := in.ReturnResID.(type) {
	case nil:
	case bool:
		returnResID = v
	case string:
		b, ok := queryBool(v)
		if !ok {
			return nil, api.BadRequest("Invalid input for field/attribute return_reservation_id. Value: %s.", v)
		}
		returnResID = b
	default:
		return nil, api.BadRequest("Invalid input for field/attribute return_reservation_id.")
	}
	configDrive := false
	switch v := in.ConfigDrive.(type) {
	case nil:
	case bool:
		configDrive = v
	case string:
		if v != "" {
			b, ok := queryBool(v)
			if !ok {
				return nil, api.BadRequest("Invalid input for field/attribute config_drive. Value: %s.", v)
			}
			configDrive = b
		}
	default:
		return nil, api.BadRequest("Invalid input for field/attribute config_drive. Value: %v. %v is not of type 'boolean', 'string', 'null'", v, v)
	}
	diskConfig := "MANUAL"
	if in.DiskConfig != nil {
		if *in.DiskConfig != "AUTO" && *in.DiskConfig != "MANUAL" {
			return nil, api.BadRequest("Invalid input for field/attribute OS-DCF:diskConfig. Value: %s. '%s' is not one of ['AUTO', 'MANUAL']", *in.DiskConfig, *in.DiskConfig)
		}
		diskConfig = *in.DiskConfig
	}
	accessV4, accessV6 := "", ""
	if in.AccessIPv4 != nil && *in.AccessIPv4 != "" {
		if ip := net.ParseIP(*in.AccessIPv4); ip == nil || ip.To4() == nil {
			return nil, api.BadRequest("Invalid input for field/attribute accessIPv4. Value: %s. '%s' is not a 'ipv4'", *in.AccessIPv4, *in.AccessIPv4)
		}
		accessV4 = *in.AccessIPv4
	}
	if in.AccessIPv6 != nil && *in.AccessIPv6 != "" {
		v6, err := accessIPv6(*in.AccessIPv6)
		if err != nil {
			return nil, err
		}
		accessV6 = v6
	}
	adminPass := genPassword()
	if in.AdminPass != nil {
		adminPass = *in.AdminPass
	}
	// User data.
	var userData *string
	if in.UserData != nil && *in.UserData != "" {
		if len(*in.UserData) > maxUserData {
			return nil, api.BadRequest("Invalid input for field/attribute user_data. Value: %s. is too long", truncate(*in.UserData, 20))
		}
		if _, err := base64.StdEncoding.DecodeString(*in.UserData); err != nil {
			return nil, api.BadRequest("Invalid input for field/attribute user_data. Value: %s. '%s' is not a 'base64'", truncate(*in.UserData, 20), truncate(*in.UserData, 20))
		}
		userData = in.UserData
	}
	// Metadata.
	md := map[string]string{}
	for k, raw := range in.Metadata {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, api.BadRequest("Invalid input for field/attribute metadata. Value: %s. %s is not of type 'string'", raw, raw)
		}
		if k == "" || len(k) > 255 || len(v) > 255 {
			return nil, api.BadRequest("Invalid input for field/attribute metadata. Metadata keys and values must be 1-255 and 0-255 characters.")
		}
		md[k] = v
	}
	// Networks.
	nets, err := parseNetworks(r, in.Networks)
	if err != nil {
		return nil, err
	}
	sgs := []string{}
	for _, g := range in.SecurityGroups {
		n := g["name"]
		if n == "" {
			return nil, api.BadRequest("Invalid input for field/attribute security_groups. 'name' is a required property")
		}
		sgs = append(sgs, n)
	}
	if len(sgs) > 0 && s.cfg.NetworkURL != "" {
		// As Nova: each group, by name or id, must exist for the project.
		groups, err := s.neutronGroups(r, "?project_id="+url.QueryEscape(s.caller(r).project))
		if err != nil {
			return nil, err
		}
		for _, n := range sgs {
			found := n == "default" // made with the project's first port, as Neutron's
			for _, g := range groups {
				found = found || g["name"] == n || g["id"] == n
			}
			if !found {
				return nil, api.BadRequest("Unable to find security_group with name or id '%s'", n)
			}
		}
	}
	if len(sgs) == 0 && nets.Mode != "none" {
		sgs = []string{"default"}
	}
	// Availability zone and forced host.
	hints := body.Hints
	if hints == nil {
		hints = body.HintsAlt
	}
	zone, forceHost := "", ""
	if in.AvailabilityZone != nil && *in.AvailabilityZone != "" {
		parts := strings.SplitN(*in.AvailabilityZone, ":", 3)
		zone = parts[0]
		if len(parts) > 1 {
			if err := s.authorize(r, "os_compute_api:servers:create:forced_host", projectTarget(c.project, c.user)); err != nil {
				return nil, err
			}
			forceHost = parts[1]
		}
	}
	if in.Host != nil || in.HypervisorHost != nil {
		if err := s.authorize(r, "os_compute_api:servers:create:requested_destination", projectTarget(c.project, c.user)); err != nil {
			return nil, err
		}
		// One agent is one host and one hypervisor, so either names it.
		for _, name := range []*string{in.Host, in.HypervisorHost} {
			if name == nil {
				continue
			}
			if _, err := s.hostByName(r.Context(), s.db, *name); err != nil {
				return nil, api.BadRequest("Compute host %s could not be found.", *name)
			}
			if forceHost != "" && forceHost != *name {
				return nil, api.BadRequest("Compute host %s could not be found.", *name)
			}
			forceHost = *name
		}
	}
	var groupID string
	if g, ok := hints["group"]; ok {
		gs, _ := g.(string)
		if !isUUID(gs) {
			return nil, api.BadRequest("Invalid input for field/attribute group. Value: %v. '%v' is not a 'uuid'", g, g)
		}
		groupID = gs
	}
	// Things that need the database or other services.
	ctx := r.Context()
	f, err := s.visibleFlavor(ctx, s.db, c, refID(flavorRef))
	if err != nil {
		var e *api.Error
		if errors.As(err, &e) && e.Status == http.StatusNotFound {
			return nil, api.BadRequest("Flavor %s could not be found.", refID(flavorRef))
		}
		return nil, err
	}
	imageRef := ""
	if in.ImageRef != nil {
		imageRef = refID(*in.ImageRef)
	}
	if plan.ImageRef != "" {
		if imageRef != "" && imageRef != plan.ImageRef {
			return nil, api.BadRequest("Block Device Mapping is Invalid: the boot image %s is not imageRef %s.", plan.ImageRef, imageRef)
		}
		imageRef = plan.ImageRef
	}
	if plan.BootFromVolume {
		// The root disk is a volume: the server has no image ("image": "").
		imageRef = ""
	} else if imageRef == "" {
		return nil, api.BadRequest("Missing imageRef attribute")
	}
	if imageRef != "" && !isUUID(imageRef) {
		return nil, api.BadRequest("Invalid imageRef provided.")
	}
	if len(plan.Volumes) > 0 && maxCount > 1 {
		return nil, api.BadRequest("Block Device Mapping is Invalid: volumes cannot be mapped to more than one server of a request.")
	}
	imageProps := map[string]string{}
	if s.cfg.Images != nil && imageRef != "" {
		img, err := s.activeImage(ctx, c.token, imageRef)
		if err != nil {
			return nil, err
		}
		if f.RootGB > 0 {
			if img.SizeBytes > int64(f.RootGB)<<30 {
				return nil, api.BadRequest("Flavor's disk is too small for requested image. Flavor disk is %d bytes, image is %d bytes.", int64(f.RootGB)<<30, img.SizeBytes)
			}
			if img.MinDiskGB > f.RootGB {
				return nil, api.BadRequest("Flavor's disk is too small for requested image. Flavor disk is %d bytes, image is %d bytes.", int64(f.RootGB)<<30, int64(img.MinDiskGB)<<30)
			}
		}
		if img.MinRAMMB > f.MemoryMB {
			return nil, api.BadRequest("Flavor's memory is too small for requested image.")
		}
		imageProps = img.Properties
	}
	if s.cfg.Networks != nil {
		for _, n := range nets.Requested {
			if n.NetworkID != "" {
				ok, err := s.cfg.Networks.NetworkExists(ctx, c.token, n.NetworkID)
				if err != nil {
					return nil, fmt.Errorf("look up network %s: %w", n.NetworkID, err)
				}
				if !ok {
					return nil, api.BadRequest("Network %s could not be found.", n.NetworkID)
				}
			}
			if n.PortID != "" {
				exists, inUse, err := s.cfg.Networks.PortUsable(ctx, c.token, n.PortID)
				if err != nil {
					return nil, fmt.Errorf("look up port %s: %w", n.PortID, err)
				}
				if !exists {
					return nil, api.BadRequest("Port %s could not be found.", n.PortID)
				}
				if inUse {
					return nil, api.Conflict("Port %s is still in use.", n.PortID)
				}
			}
		}
	}
	var keyName, keyData *string
	if in.KeyName != nil {
		k, err := store.QueryOne(ctx, s.db, scanKeypair, `SELECT `+keypairCols+` FROM compute_keypairs WHERE user_id = ? AND name = ?`, c.user, *in.KeyName)
		if isNoRows(err) {
			return nil, api.BadRequest("Invalid key_name provided.")
		}
		if err != nil {
			return nil, fmt.Errorf("look up keypair: %w", err)
		}
		keyName, keyData = &k.Name, &k.PublicKey
	}
	if zone != "" {
		if ok, err := s.zoneExists(r, zone); err != nil {
			return nil, err
		} else if !ok {
			return nil, api.BadRequest("The requested availability zone is not available")
		}
	}
	if maxCount > 1 && nets.hasPort() {
		return nil, api.BadRequest("Multiple instances cannot be created with a port specified.")
	}
	hintsStored := map[string]string{}
	if forceHost != "" {
		hintsStored["force_host"] = forceHost
	}
	// Volumes last, as they are the only step that changes another
	// service before the transaction; a failure gives them back.
	var volumes *preparedVolumes
	rootGB := f.RootGB
	if len(plan.Volumes) > 0 {
		if volumes, err = s.prepareCreateVolumes(r, plan, zone); err != nil {
			return nil, err
		}
		if plan.BootFromVolume {
			imageProps = volumes.imageProps
			rootGB = 0 // the root is the volume: the host's disk is not used for it
		}
	}
	// One transaction: quota check and the servers, all or nothing.
	resID := genReservationID()
	var created []instance
	type build struct {
		id, host string
		cmd      Command
	}
	var builds []build
	create := func(tx *store.Tx) error {
		created, builds = created[:0], builds[:0]
		if err := store.LockKey(ctx, tx, "quota:"+c.project); err != nil {
			return err
		}
		if groupID != "" {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM compute_server_groups WHERE id = ? AND project_id = ?`, groupID, c.project).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return api.BadRequest("Instance group %s could not be found.", groupID)
			}
		}
		limits, err := s.limitsFor(ctx, tx, c.project)
		if err != nil {
			return err
		}
		if l := limits["metadata_items"]; l >= 0 && len(md) > l {
			return api.Forbidden("Quota exceeded for metadata_items: Requested %d, but already used 0 of %d metadata_items", len(md), l)
		}
		used, err := usageIfLimited(ctx, tx, c.project, limits, "instances", "cores", "ram")
		if err != nil {
			return err
		}
		// Create as many as fit between min and max, as Nova does.
		count := maxCount
		for ; count >= minCount; count-- {
			fits := true
			for res, per := range map[string]int{"instances": 1, "cores": f.VCPUs, "ram": f.MemoryMB} {
				if l := limits[res]; l >= 0 && used[res]+per*count > l {
					fits = false
				}
			}
			if fits {
				break
			}
		}
		if count < minCount {
			return s.checkQuota(ctx, tx, c.project, map[string]int{"instances": minCount, "cores": f.VCPUs * minCount, "ram": f.MemoryMB * minCount})
		}
		if groupID != "" {
			var members int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM compute_server_group_members WHERE group_id = ?`, groupID).Scan(&members); err != nil {
				return err
			}
			if l := limits["server_group_members"]; l >= 0 && members+count > l {
				return api.Forbidden("Quota exceeded, too many servers in group")
			}
		}
		var seq int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM compute_instances`).Scan(&seq); err != nil {
			return err
		}
		ts := store.FormatTime(now())
		for n := 0; n < count; n++ {
			seq++
			i := instance{ID: newID(), Seq: seq, ProjectID: c.project, UserID: c.user, Name: name, Description: description,
				ImageRef: imageRef, ImageProps: jsonText(imageProps), FlavorID: f.ID, Flavor: jsonText(f.spec()),
				VCPUs: f.VCPUs, MemoryMB: f.MemoryMB, RootGB: rootGB, VMState: vmBuilding, TaskState: ptr(taskScheduling),
				KeyName: keyName, KeyData: keyData, UserData: userData, AccessIPv4: accessV4, AccessIPv6: accessV6,
				ConfigDrive: configDrive, DiskConfig: diskConfig, ReservationID: resID, LaunchIndex: n,
				SecurityGroups: jsonText(sgs), Networks: jsonText(nets), Addresses: "{}", Hints: jsonText(hintsStored),
				TriedHosts: "[]", CreatedAt: ts, UpdatedAt: ts}
			if count > 1 {
				i.Name = fmt.Sprintf("%s-%d", name, n+1)
			}
			i.Hostname = sanitizeHostname(i.Name, i.ID)
			if zone != "" {
				i.RequestedAZ, i.AZ = ptr(zone), ptr(zone)
			}
			if groupID != "" {
				i.ServerGroupID = ptr(groupID)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO compute_instances (id, seq, project_id, user_id, name, description, hostname, image_ref,
				image_props, flavor_id, flavor, vcpus, memory_mb, root_gb, vm_state, task_state, power_state, availability_zone,
				requested_az, key_name, key_data, user_data, access_ipv4, access_ipv6, config_drive, disk_config, reservation_id,
				launch_index, security_groups, networks, addresses, server_group_id, hints, tried_hosts, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				i.ID, i.Seq, i.ProjectID, i.UserID, i.Name, i.Description, i.Hostname, i.ImageRef, i.ImageProps, i.FlavorID, i.Flavor,
				i.VCPUs, i.MemoryMB, i.RootGB, i.VMState, i.TaskState, i.AZ, i.RequestedAZ, i.KeyName, i.KeyData, i.UserData,
				i.AccessIPv4, i.AccessIPv6, boolInt(i.ConfigDrive), i.DiskConfig, i.ReservationID, i.LaunchIndex, i.SecurityGroups,
				i.Networks, i.Addresses, i.ServerGroupID, i.Hints, i.TriedHosts, i.CreatedAt, i.UpdatedAt); err != nil {
				return fmt.Errorf("insert server: %w", err)
			}
			for k, v := range md {
				if _, err := tx.Exec(ctx, `INSERT INTO compute_instance_metadata (instance_id, key, value) VALUES (?, ?, ?)`, i.ID, k, v); err != nil {
					return err
				}
			}
			if volumes != nil {
				if err := insertCreateVolumes(ctx, tx, i, volumes.rows, diskBusOf(imageProps)); err != nil {
					return err
				}
			}
			for _, t := range tags {
				if _, err := tx.Exec(ctx, `INSERT INTO compute_instance_tags (instance_id, tag) VALUES (?, ?)`, i.ID, t); err != nil {
					return err
				}
			}
			if groupID != "" {
				if _, err := tx.Exec(ctx, `INSERT INTO compute_server_group_members (group_id, instance_id) VALUES (?, ?)`, groupID, i.ID); err != nil {
					return err
				}
			}
			if _, err := recordAction(ctx, tx, i.ID, "create", c); err != nil {
				return err
			}
			created = append(created, i)
		}
		// Placing the servers in the same transaction saves a round of
		// writes per boot; the build commands go out after the commit
		// (and again from the reconcile loop if this process dies first).
		for _, i := range created {
			cmd, target, err := s.place(ctx, tx, i.ID)
			if err != nil {
				return err
			}
			if target != "" {
				builds = append(builds, build{id: i.ID, host: target, cmd: cmd})
			}
		}
		return nil
	}
	// A burst of boots can outlast SQLite's busy timeout; the request
	// waits more instead of failing with a 500.
	err = store.RetryBusy(ctx, 3, func() error { return s.writeTx(ctx, create) })
	if err != nil {
		if volumes != nil {
			volumes.undo(s, ctx)
		}
		return nil, err
	}
	if volumes != nil && len(builds) == 0 {
		// Placed nowhere (ERROR): its volumes go back at once.
		for _, i := range created {
			s.settleVolumes(context.WithoutCancel(ctx), i.ID)
		}
	}
	for _, b := range builds {
		if err := s.sendBuild(ctx, b.id, b.host, b.cmd); err != nil {
			s.log.Error("send build", "instance", b.id, "request_id", api.RequestID(ctx), "err", err)
		}
	}
	if returnResID {
		return api.JSON(http.StatusAccepted, map[string]any{"reservation_id": resID}), nil
	}
	first := created[0]
	out := map[string]any{"id": first.ID, "links": s.links(r, "servers", first.ID), "OS-DCF:diskConfig": diskConfig, "adminPass": adminPass}
	if len(sgs) > 0 {
		list := []map[string]string{}
		for _, g := range sgs {
			list = append(list, map[string]string{"name": g})
		}
		out["security_groups"] = list
	}
	resp := api.JSON(http.StatusAccepted, map[string]any{"server": out})
	return resp.WithHeader("Location", s.baseURL(r)+"/v2.1/servers/"+first.ID), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (n networksField) hasPort() bool {
	for _, r := range n.Requested {
		if r.PortID != "" {
			return true
		}
	}
	return false
}

// parseNetworks validates the networks of a create request: "auto",
// "none" (2.37) or a list of network, port and fixed IP requests.
func parseNetworks(r *http.Request, raw json.RawMessage) (networksField, error) {
	var out networksField
	if len(raw) == 0 || string(raw) == "null" {
		if at(r, 37) {
			return out, api.BadRequest("Invalid input for field/attribute server. 'networks' is a required property")
		}
		out.Mode = "auto"
		return out, nil
	}
	var mode string
	if err := json.Unmarshal(raw, &mode); err == nil {
		if !at(r, 37) || (mode != "auto" && mode != "none") {
			return out, api.BadRequest("Invalid input for field/attribute networks. Value: %s. '%s' is not of type 'array'", mode, mode)
		}
		out.Mode = mode
		return out, nil
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return out, api.BadRequest("Invalid input for field/attribute networks. Value: %s. is not of type 'array'", raw)
	}
	seen := map[string]bool{}
	for _, item := range list {
		var n NetworkRequest
		for k, v := range item {
			var sv string
			if err := json.Unmarshal(v, &sv); err != nil && string(v) != "null" {
				return out, api.BadRequest("Invalid input for field/attribute %s. Value: %s. %s is not of type 'string'", k, v, v)
			}
			switch k {
			case "uuid":
				n.NetworkID = sv
			case "port":
				n.PortID = sv
			case "fixed_ip":
				n.FixedIP = sv
			case "tag":
				if !((at(r, 32) && !at(r, 37)) || at(r, 42)) {
					return out, api.BadRequest("Invalid input for field/attribute networks. Additional properties are not allowed ('tag' was unexpected)")
				}
				n.Tag = sv
			default:
				return out, api.BadRequest("Invalid input for field/attribute networks. Additional properties are not allowed ('%s' was unexpected)", k)
			}
		}
		switch {
		case n.PortID != "":
			if !isUUID(n.PortID) {
				return out, api.BadRequest("Bad port format: port uuid is not in proper format (%s)", n.PortID)
			}
			if seen["port:"+n.PortID] {
				return out, api.BadRequest("Port %s is used more than once.", n.PortID)
			}
			seen["port:"+n.PortID] = true
		case n.NetworkID == "":
			return out, api.BadRequest("Bad network format: missing 'uuid'")
		case !isUUID(n.NetworkID):
			return out, api.BadRequest("Bad networks format: network uuid is not in proper format (%s)", n.NetworkID)
		}
		if n.FixedIP != "" && net.ParseIP(n.FixedIP) == nil {
			return out, api.BadRequest("Invalid fixed IP address (%s)", n.FixedIP)
		}
		out.Requested = append(out.Requested, n)
	}
	return out, nil
}

// Update and delete

func (s *Service) updateServer(r *http.Request) (*api.Response, error) {
	var body struct {
		Server *struct {
			Name        *string              `json:"name"`
			AccessIPv4  *string              `json:"accessIPv4"`
			AccessIPv6  *string              `json:"accessIPv6"`
			DiskConfig  *string              `json:"OS-DCF:diskConfig"`
			Description api.Optional[string] `json:"description"`
		} `json:"server"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.Server
	if in == nil {
		return nil, api.BadRequest("Invalid input for field/attribute server. 'server' is a required property")
	}
	if in.Description.Set && !at(r, 19) {
		return nil, api.BadRequest("Invalid input for field/attribute server. Additional properties are not allowed ('description' was unexpected)")
	}
	i, err := s.serverFor(r, "os_compute_api:servers:update")
	if err != nil {
		return nil, err
	}
	set, args := []string{}, []any{}
	if in.Name != nil {
		if *in.Name == "" || len([]rune(*in.Name)) > 255 || strings.TrimSpace(*in.Name) == "" {
			return nil, api.BadRequest("Invalid input for field/attribute name. Value: %s.", *in.Name)
		}
		set, args = append(set, "name = ?"), append(args, *in.Name)
	}
	if in.AccessIPv4 != nil {
		if ip := net.ParseIP(*in.AccessIPv4); *in.AccessIPv4 != "" && (ip == nil || ip.To4() == nil) {
			return nil, api.BadRequest("Invalid input for field/attribute accessIPv4. Value: %s. '%s' is not a 'ipv4'", *in.AccessIPv4, *in.AccessIPv4)
		}
		set, args = append(set, "access_ipv4 = ?"), append(args, *in.AccessIPv4)
	}
	if in.AccessIPv6 != nil {
		v6, err := accessIPv6(*in.AccessIPv6)
		if err != nil {
			return nil, err
		}
		set, args = append(set, "access_ipv6 = ?"), append(args, v6)
	}
	if in.DiskConfig != nil {
		if *in.DiskConfig != "AUTO" && *in.DiskConfig != "MANUAL" {
			return nil, api.BadRequest("Invalid input for field/attribute OS-DCF:diskConfig. Value: %s.", *in.DiskConfig)
		}
		set, args = append(set, "disk_config = ?"), append(args, *in.DiskConfig)
	}
	if in.Description.Set {
		var d *string
		if !in.Description.Null {
			if len([]rune(in.Description.Value)) > 255 {
				return nil, api.BadRequest("Invalid input for field/attribute description. is too long")
			}
			d = &in.Description.Value
		}
		set, args = append(set, "description = ?"), append(args, d)
	}
	if len(set) > 0 {
		err := s.writeTx(r.Context(), func(tx *store.Tx) error {
			_, err := tx.Exec(r.Context(), `UPDATE compute_instances SET `+strings.Join(set, ", ")+`, updated_at = ? WHERE id = ? AND deleted = 0`,
				append(args, store.FormatTime(now()), i.ID)...)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("update server %s: %w", i.ID, err)
		}
	}
	i, err = s.getInstance(r.Context(), s.db, s.caller(r), i.ID)
	if err != nil {
		return nil, err
	}
	return s.serverResponse(r, http.StatusOK, i, viewOpts{groups: true})
}

// deleteServer deletes at once what never reached a host (or whose host
// is down: the durable command reaches it when it returns) and otherwise
// asks the host and waits for its report.
func (s *Service) deleteServer(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	i, err := s.serverFor(r, "os_compute_api:servers:delete")
	if err != nil {
		return nil, err
	}
	if i.Locked && !c.admin {
		return nil, api.Conflict("Instance %s is locked", i.ID)
	}
	var cmds []command
	local := false
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		cmds, local = nil, false
		cur, err := s.getInstance(r.Context(), tx, c, i.ID)
		if err != nil {
			return err
		}
		if _, err := recordAction(r.Context(), tx, cur.ID, "delete", c); err != nil {
			return err
		}
		host := cur.host()
		hostUp := false
		if host != "" {
			if h, err := s.hostByName(r.Context(), tx, host); err == nil {
				hostUp = s.up(h)
			}
		}
		if host != "" {
			spec, err := s.specOf(r.Context(), tx, cur)
			if err != nil {
				return err
			}
			cmd := Command{ID: newID(), Op: OpDelete, Instance: spec}
			cmds = append(cmds, command{host: host, cmd: cmd})
			if hostUp {
				if err := s.addPending(r.Context(), tx, cur.ID, cmd.ID, OpDelete, "delete", host); err != nil {
					return err
				}
				_, err := tx.Exec(r.Context(), `UPDATE compute_instances SET task_state = ?, updated_at = ? WHERE id = ?`, taskDeleting, store.FormatTime(now()), cur.ID)
				return err
			}
		}
		local = !cur.Deleted
		return s.markDeleted(r.Context(), tx, cur)
	})
	if err != nil {
		return nil, err
	}
	if local {
		s.deallocatePorts(r, i)
		s.settleVolumes(context.WithoutCancel(r.Context()), i.ID)
	}
	for _, cmd := range cmds {
		if err := s.send(r.Context(), cmd.host, cmd.cmd); err != nil {
			// The host will be told when it syncs; the reconcile loop
			// completes the delete if it never answers.
			s.log.Warn("send delete", "instance", i.ID, "host", cmd.host, "err", err)
		}
	}
	return api.NoContent(), nil
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// accessIPv6 validates an accessIPv6 value and returns it in its
// canonical (RFC 5952) form, as Nova stores it: "0:0:0:0:0:babe:220.12.22.2"
// is shown as "::babe:dc0c:1602". An empty value clears it.
func accessIPv6(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	ip := net.ParseIP(v)
	if ip == nil || ip.To4() != nil || strings.Contains(v, "%") {
		return "", api.BadRequest("Invalid input for field/attribute accessIPv6. Value: %s. '%s' is not a 'ipv6'", v, v)
	}
	return ip.String(), nil
}
