package compute

import (
	"context"
	"net/http"
	"net/url"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// SubjectEventsPrefix + host carries ExternalEvent to an agent (plain
// publish: an agent that misses one re-reads the port on its own).
const SubjectEventsPrefix = "compute.events."

// ExternalEvent is an event another service told the compute API about
// (os-server-external-events), passed on to the server's agent: Neutron's
// network-vif-plugged lets an agent waiting for a port go on at once.
type ExternalEvent struct {
	Name       string `json:"name"`
	ServerUUID string `json:"server_uuid"`
	Tag        string `json:"tag,omitempty"`
	Status     string `json:"status"`
}

var eventNames = map[string]int{
	"network-changed": 0, "network-vif-plugged": 0, "network-vif-unplugged": 0, "network-vif-deleted": 0,
	"volume-extended": 51, "power-update": 76,
}

// externalEvents serves POST /os-server-external-events (admin).
func (s *Service) externalEvents(r *http.Request) (*api.Response, error) {
	var body struct {
		Events []struct {
			Name       string  `json:"name"`
			ServerUUID string  `json:"server_uuid"`
			Tag        *string `json:"tag"`
			Status     *string `json:"status"`
		} `json:"events"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if len(body.Events) == 0 {
		return nil, api.BadRequest("Invalid input for field/attribute events. [] is too short")
	}
	out := []map[string]any{}
	found := false
	for _, e := range body.Events {
		minor, ok := eventNames[e.Name]
		if !ok || !at(r, minor) {
			return nil, api.BadRequest("Invalid input for field/attribute name. Value: %s.", e.Name)
		}
		status := "completed"
		if e.Status != nil {
			switch *e.Status {
			case "completed", "failed", "in-progress":
				status = *e.Status
			default:
				return nil, api.BadRequest("Invalid input for field/attribute status. Value: %s.", *e.Status)
			}
		}
		ev := map[string]any{"name": e.Name, "server_uuid": e.ServerUUID, "status": status, "code": 200}
		tag := ""
		if e.Tag != nil {
			ev["tag"], tag = *e.Tag, *e.Tag
		}
		i, err := store.QueryOne(r.Context(), s.db, scanInstance, `SELECT `+instanceCols+` FROM compute_instances WHERE id = ? AND deleted = 0`, e.ServerUUID)
		switch {
		case isNoRows(err):
			ev["code"], ev["status"] = 404, "failed"
		case err != nil:
			return nil, err
		case i.host() == "":
			ev["code"], ev["status"] = 422, "failed"
		default:
			found = true
			s.forwardEvent(r.Context(), i.host(), ExternalEvent{Name: e.Name, ServerUUID: e.ServerUUID, Tag: tag, Status: status})
		}
		out = append(out, ev)
	}
	if !found {
		return nil, api.NotFound("No instances found for any event")
	}
	return api.JSON(http.StatusOK, map[string]any{"events": out}), nil
}

// forwardEvent passes an event on to the agent of the server's host (a
// plain publish: an agent that misses one catches up on its own).
func (s *Service) forwardEvent(ctx context.Context, host string, ev ExternalEvent) {
	if s.cfg.Bus == nil {
		return
	}
	if err := bus.Publish(ctx, s.cfg.Bus, SubjectEventsPrefix+host, ev); err != nil {
		s.log.Warn("forward external event", "server", ev.ServerUUID, "event", ev.Name, "err", err)
	}
}

// NetworkChanged tells the agents of these servers that their ports
// changed (a floating IP joined or left), as Neutron's network-changed
// event tells Nova, so that they report the servers' addresses anew.
// Servers that are gone or not on a host are skipped.
func (s *Service) NetworkChanged(ctx context.Context, servers []string) {
	for _, id := range servers {
		i, err := store.QueryOne(ctx, s.db, scanInstance, `SELECT `+instanceCols+` FROM compute_instances WHERE id = ? AND deleted = 0`, id)
		if err != nil {
			if !isNoRows(err) {
				s.log.Warn("network change of server", "server", id, "err", err)
			}
			continue
		}
		if h := i.host(); h != "" {
			s.forwardEvent(ctx, h, ExternalEvent{Name: "network-changed", ServerUUID: id, Status: "completed"})
		}
	}
}

// os-tenant-networks: the networks a project can use, in nova-network's
// shape (before 2.36).

func (s *Service) tenantNetworkView(r *http.Request, n map[string]any) map[string]any {
	out := map[string]any{"id": n["id"], "label": n["name"], "cidr": nil}
	subnets, _ := n["subnets"].([]any)
	if len(subnets) > 0 {
		var sub struct {
			Subnet map[string]any `json:"subnet"`
		}
		if id, _ := subnets[0].(string); id != "" {
			if s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/subnets/"+url.PathEscape(id), nil, &sub, http.StatusOK, "") == nil {
				out["cidr"] = sub.Subnet["cidr"]
			}
		}
	}
	return out
}

func (s *Service) listTenantNetworks(r *http.Request) (*api.Response, error) {
	return s.listNetworksAs(r, s.tenantNetworkView)
}

func (s *Service) showTenantNetwork(r *http.Request) (*api.Response, error) {
	id := r.PathValue("network_id")
	return s.showNetworkAs(r, s.tenantNetworkView, "Network "+id+" could not be found.")
}

// networkView renders one of the networking service's networks in a
// nova-network style API (os-tenant-networks, os-networks).
type networkView func(r *http.Request, n map[string]any) map[string]any

// listNetworksAs lists the networks the caller sees, each through view.
func (s *Service) listNetworksAs(r *http.Request, view networkView) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	var out struct {
		Networks []map[string]any `json:"networks"`
	}
	if err := s.call(r, s.cfg.NetworkURL, "GET", "/v2.0/networks", nil, &out, http.StatusOK, "Network not found."); err != nil {
		return nil, err
	}
	list := []map[string]any{}
	for _, n := range out.Networks {
		list = append(list, view(r, n))
	}
	return api.JSON(http.StatusOK, map[string]any{"networks": list}), nil
}

// showNetworkAs shows the {network_id} network through view, or 404 with
// notFound, the message of the API being imitated.
func (s *Service) showNetworkAs(r *http.Request, view networkView, notFound string) (*api.Response, error) {
	if err := proxyGone(r); err != nil {
		return nil, err
	}
	var out struct {
		Network map[string]any `json:"network"`
	}
	path := "/v2.0/networks/" + url.PathEscape(r.PathValue("network_id"))
	if err := s.call(r, s.cfg.NetworkURL, "GET", path, nil, &out, http.StatusOK, notFound); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"network": view(r, out.Network)}), nil
}
