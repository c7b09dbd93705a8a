package compute

import (
	"net"
	"net/http"
	"net/url"
	"slices"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// os-interface: a server's ports, and hot-plugging more. The API creates
// or binds the port in the networking service with the caller's token and
// the agent plugs it; the port belongs to the user's project, so it
// counts against their networking quota as in Nova.

func interfaceView(r *http.Request, p map[string]any) map[string]any {
	ips := []map[string]any{}
	list, _ := p["fixed_ips"].([]any)
	for _, x := range list {
		m, _ := x.(map[string]any)
		ips = append(ips, map[string]any{"subnet_id": m["subnet_id"], "ip_address": m["ip_address"]})
	}
	out := map[string]any{"port_id": p["id"], "net_id": p["network_id"], "mac_addr": p["mac_address"], "port_state": p["status"], "fixed_ips": ips}
	if at(r, 70) {
		out["tag"] = nil
	}
	return out
}

func (s *Service) listInterfaces(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:os-attach-interfaces:list")
	if err != nil {
		return nil, err
	}
	ports, err := s.serverPorts(r, i.ID)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(ports))
	for _, p := range ports {
		out = append(out, interfaceView(r, p))
	}
	return api.JSON(http.StatusOK, map[string]any{"interfaceAttachments": out}), nil
}

func (s *Service) showInterface(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:os-attach-interfaces:show")
	if err != nil {
		return nil, err
	}
	ports, err := s.serverPorts(r, i.ID)
	if err != nil {
		return nil, err
	}
	for _, p := range ports {
		if p["id"] == r.PathValue("port_id") {
			return api.JSON(http.StatusOK, map[string]any{"interfaceAttachment": interfaceView(r, p)}), nil
		}
	}
	return nil, api.NotFound("Port %s is not attached", r.PathValue("port_id"))
}

// interfaceStates are the vm states interfaces can be attached and
// detached in.
var interfaceStates = []string{vmActive, vmPaused, vmStopped}

func (s *Service) attachInterface(r *http.Request) (*api.Response, error) {
	var body struct {
		Attachment *struct {
			PortID   string              `json:"port_id"`
			NetID    string              `json:"net_id"`
			FixedIPs []map[string]string `json:"fixed_ips"`
			Tag      *string             `json:"tag"`
		} `json:"interfaceAttachment"`
	}
	if r.ContentLength != 0 {
		if err := api.DecodeJSON(r, &body); err != nil {
			return nil, err
		}
	}
	in := body.Attachment
	if in == nil {
		return nil, api.BadRequest("Invalid input for field/attribute interfaceAttachment. 'interfaceAttachment' is a required property")
	}
	if in.Tag != nil && !at(r, 49) {
		return nil, api.BadRequest("Invalid input for field/attribute interfaceAttachment. Additional properties are not allowed ('tag' was unexpected)")
	}
	if in.PortID != "" && in.NetID != "" {
		return nil, api.BadRequest("Must not input both network_id and port_id")
	}
	if in.PortID == "" && in.NetID == "" {
		return nil, api.BadRequest("Must input network_id or port_id")
	}
	if len(in.FixedIPs) > 0 && in.NetID == "" {
		return nil, api.BadRequest("Must input network_id when request IP address")
	}
	for _, f := range in.FixedIPs {
		if net.ParseIP(f["ip_address"]) == nil {
			return nil, api.BadRequest("Invalid fixed IP address (%s)", f["ip_address"])
		}
	}
	i, err := s.serverFor(r, "os_compute_api:os-attach-interfaces:create")
	if err != nil {
		return nil, err
	}
	if s.cfg.NetworkURL == "" {
		return nil, api.Errorf(http.StatusNotImplemented, "The networking service is not configured.")
	}
	if i.Locked && !s.caller(r).admin {
		return nil, api.Conflict("Instance %s is locked", i.ID)
	}
	if !contains(interfaceStates, i.VMState) || i.TaskState != nil {
		return nil, invalidState("attach_interface", i.ID, "vm_state", i.VMState)
	}
	var port map[string]any
	created := false
	if in.PortID != "" {
		var out struct {
			Port map[string]any `json:"port"`
		}
		if err := s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/ports/"+url.PathEscape(in.PortID), nil, &out, http.StatusOK, "Port "+in.PortID+" could not be found."); err != nil {
			return nil, err
		}
		if d, _ := out.Port["device_id"].(string); d != "" {
			return nil, api.Conflict("Port %s is still in use.", in.PortID)
		}
		if err := s.call(r, s.cfg.NetworkURL, "PUT", "/v2.0/ports/"+url.PathEscape(in.PortID),
			map[string]any{"port": map[string]any{"device_id": i.ID, "device_owner": "compute:" + derefOr(i.AZ)}}, &out,
			http.StatusOK, "Port "+in.PortID+" could not be found."); err != nil {
			return nil, err
		}
		port = out.Port
	} else {
		req := map[string]any{"network_id": in.NetID, "device_id": i.ID, "device_owner": "compute:" + derefOr(i.AZ)}
		if len(in.FixedIPs) > 0 {
			ips := []map[string]string{}
			for _, f := range in.FixedIPs {
				ips = append(ips, map[string]string{"ip_address": f["ip_address"]})
			}
			req["fixed_ips"] = ips
		}
		var out struct {
			Port map[string]any `json:"port"`
		}
		if err := s.call(r, s.cfg.NetworkURL, "POST", "/v2.0/ports", map[string]any{"port": req}, &out, http.StatusCreated, "Network "+in.NetID+" could not be found."); err != nil {
			return nil, err
		}
		port, created = out.Port, true
	}
	portID, _ := port["id"].(string)
	err = s.act(r, i, stateAction{name: "attach_interface", op: OpAttachInterface, vmStates: interfaceStates},
		func(tx *store.Tx, cur *instance, cmd *Command) error {
			cmd.PortID = portID
			if !created {
				return nil
			}
			nets := fromJSON[networksField](cur.Networks)
			nets.CreatedPorts = append(nets.CreatedPorts, portID)
			_, err := tx.Exec(r.Context(), `UPDATE compute_instances SET networks = ? WHERE id = ?`, jsonText(nets), cur.ID)
			return err
		})
	if err != nil {
		// Undo the port change so a failed attach leaves nothing behind.
		_ = s.releasePort(r, portID, created)
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"interfaceAttachment": interfaceView(r, port)}), nil
}

func (s *Service) detachInterface(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:os-attach-interfaces:delete")
	if err != nil {
		return nil, err
	}
	if i.Locked && !s.caller(r).admin {
		return nil, api.Conflict("Instance %s is locked", i.ID)
	}
	portID := r.PathValue("port_id")
	ports, err := s.serverPorts(r, i.ID)
	if err != nil {
		return nil, err
	}
	found := false
	for _, p := range ports {
		if p["id"] == portID {
			found = true
		}
	}
	if !found {
		return nil, api.NotFound("Port %s is not attached", portID)
	}
	createdByUs := false
	err = s.act(r, i, stateAction{name: "detach_interface", op: OpDetachInterface, vmStates: interfaceStates},
		func(tx *store.Tx, cur *instance, cmd *Command) error {
			cmd.PortID = portID
			nets := fromJSON[networksField](cur.Networks)
			createdByUs = contains(nets.CreatedPorts, portID)
			nets.CreatedPorts = keep(nets.CreatedPorts, func(p string) bool { return p != portID })
			_, err := tx.Exec(r.Context(), `UPDATE compute_instances SET networks = ? WHERE id = ?`, jsonText(nets), cur.ID)
			return err
		})
	if err != nil {
		return nil, err
	}
	if err := s.releasePort(r, portID, createdByUs); err != nil {
		return nil, err
	}
	return accepted(), nil
}

// deallocatePorts gives back the ports of a server deleted without its
// host's agent (never scheduled, shelved and offloaded, or its host
// down), as Nova's local delete does: the ports made for it are deleted,
// the ones the user brought are unbound and left to them. An agent that
// carries out a delete does this itself; here nobody else would, and the
// ports would keep their addresses, and their subnets undeletable, for
// good. A failure is logged: the server is gone either way.
func (s *Service) deallocatePorts(r *http.Request, i instance) {
	if s.cfg.NetworkURL == "" {
		return
	}
	ports, err := s.serverPorts(r, i.ID)
	if err != nil {
		s.log.Warn("ports of a deleted server", "instance", i.ID, "request_id", api.RequestID(r.Context()), "err", err)
		return
	}
	nets := fromJSON[networksField](i.Networks)
	for _, p := range ports {
		id, _ := p["id"].(string)
		requested := slices.ContainsFunc(nets.Requested, func(n NetworkRequest) bool { return n.PortID == id })
		if err := s.releasePort(r, id, !requested); err != nil {
			s.log.Warn("release port of a deleted server", "instance", i.ID, "port", id, "request_id", api.RequestID(r.Context()), "err", err)
		}
	}
}

// releasePort gives a port back after a detach or a failed attach: one
// the server's create or attach made is deleted, one the user brought is
// unbound and left to them.
func (s *Service) releasePort(r *http.Request, portID string, created bool) error {
	method, body := "PUT", any(map[string]any{"port": map[string]any{"device_id": "", "device_owner": ""}})
	if created {
		method, body = "DELETE", nil
	}
	st, data, err := s.remote(r, s.cfg.NetworkURL, method, "/v2.0/ports/"+url.PathEscape(portID), body, nil)
	if err != nil {
		return err
	}
	if st/100 != 2 {
		return remoteError(st, data, "Port "+portID+" could not be found.")
	}
	return nil
}
