package network

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

var agentExtensions = []extension{
	{"agent", "agent", "The agent management extension.", "2013-02-03T10:00:00-00:00"},
	{"dhcp_agent_scheduler", "DHCP Agent Scheduler", "Schedule networks among dhcp agents", "2013-02-07T10:00:00-00:00"},
	{"l3_agent_scheduler", "L3 Agent Scheduler", "Schedule routers among l3 agents", "2013-02-07T10:00:00-00:00"},
}

// Agent types, as Neutron names them; the data plane of each host runs
// one agent of each.
const (
	AgentDHCP        = "DHCP agent"
	AgentL3          = "L3 agent"
	AgentLinuxBridge = "Linux bridge agent"
	AgentMetadata    = "Metadata agent"
)

// defaultAgentDownTime is Neutron's agent_down_time: an agent that has
// not reported for this long is not alive.
const defaultAgentDownTime = 75 * time.Second

// AgentReport is what a host's agent says about itself when it starts
// and on every heartbeat.
type AgentReport struct {
	AgentType string
	Host      string
	// Binary is the program that runs the agent ("nimbus-agent").
	Binary string
	// Topic is the agent's bus topic ("dhcp_agent", "l3_agent", "N/A").
	Topic            string
	AvailabilityZone string
	Configurations   map[string]any
}

// agentTime is how Neutron renders agent times: "2017-09-12 19:40:38".
func agentTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

// ReportAgent records an agent's report: the first one registers it,
// later ones are heartbeats. It returns the agent's id. The data-plane
// agents call it through the bus; it is exported for that wiring.
func (s *Service) ReportAgent(ctx context.Context, rep AgentReport) (string, error) {
	if rep.AgentType == "" || rep.Host == "" {
		return "", errors.New("report agent: type and host are required")
	}
	if rep.Topic == "" {
		rep.Topic = "N/A"
	}
	var az *string
	if rep.AgentType == AgentDHCP || rep.AgentType == AgentL3 {
		v := rep.AvailabilityZone
		if v == "" {
			v = s.cfg.AvailabilityZone
		}
		az = &v
	}
	var id string
	var scheduled []Event
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		scheduled = scheduled[:0]
		t := store.FormatTime(time.Now())
		existing, err := store.QueryOne(ctx, tx, scanOneString, `SELECT id FROM agents WHERE agent_type = ? AND host = ?`, rep.AgentType, rep.Host)
		switch {
		case err == nil:
			id = existing
			_, err = tx.Exec(ctx, `UPDATE agents SET binary_name = ?, topic = ?, availability_zone = ?, configurations = ?, heartbeat_at = ? WHERE id = ?`,
				rep.Binary, rep.Topic, az, jsonText(nonNilMap(rep.Configurations)), t, id)
		case errors.Is(err, store.ErrNotFound):
			id = newID()
			_, err = tx.Exec(ctx, `INSERT INTO agents (id, agent_type, host, binary_name, topic, availability_zone, configurations, created_at, started_at, heartbeat_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, rep.AgentType, rep.Host, rep.Binary, rep.Topic, az,
				jsonText(nonNilMap(rep.Configurations)), t, t, t)
		}
		if err != nil {
			return err
		}
		scheduled, err = s.autoScheduleTx(ctx, tx, rep.AgentType)
		return err
	})
	if err == nil {
		s.notify(ctx, scheduled...)
	}
	return id, err
}

// autoScheduleTx gives the networks (or routers) no agent hosts yet to the
// least loaded alive agents of the reporting type, as Neutron's
// network_auto_schedule and router_auto_schedule do: what was created
// while no agent had reported — on a cloud's first start, or while every
// agent was down — is hosted as soon as one reports. It returns one event
// per resource scheduled, so that the chosen host's agent builds it.
func (s *Service) autoScheduleTx(ctx context.Context, tx *store.Tx, agentType string) ([]Event, error) {
	var b binding
	var resource, unhosted string
	switch agentType {
	case AgentDHCP:
		b, resource = dhcpBinding, "network"
		unhosted = `SELECT DISTINCT network_id FROM subnets WHERE enable_dhcp = 1
			AND network_id NOT IN (SELECT network_id FROM network_dhcp_agents) ORDER BY network_id`
	case AgentL3:
		b, resource = l3Binding, "router"
		unhosted = `SELECT id FROM routers WHERE id NOT IN (SELECT router_id FROM router_l3_agents) ORDER BY id`
	default:
		return nil, nil
	}
	ids, err := store.QueryAll(ctx, tx, scanOneString, unhosted)
	if err != nil {
		return nil, fmt.Errorf("auto-schedule %ss: %w", resource, err)
	}
	var evs []Event
	for _, id := range ids {
		done, err := s.scheduleTx(ctx, tx, b, id)
		if err != nil {
			return nil, fmt.Errorf("auto-schedule %s %s: %w", resource, id, err)
		}
		if done {
			evs = append(evs, Event{Resource: resource, ID: id, Action: "update"})
		}
	}
	return evs, nil
}

type agent struct {
	ID, AgentType, Host, Binary, Topic string
	AvailabilityZone, Description      *string
	AdminStateUp                       bool
	Configurations                     map[string]any
	CreatedAt, StartedAt, HeartbeatAt  time.Time
}

const agentColumns = `id, agent_type, host, binary_name, topic, availability_zone, admin_state_up, description, configurations,
	created_at, started_at, heartbeat_at`

func scanAgent(row store.Scanner) (*agent, error) {
	var a agent
	var az, desc sql.NullString
	var admin int
	var conf, created, started, beat string
	if err := row.Scan(&a.ID, &a.AgentType, &a.Host, &a.Binary, &a.Topic, &az, &admin, &desc, &conf, &created, &started, &beat); err != nil {
		return nil, err
	}
	a.AvailabilityZone, a.Description, a.AdminStateUp = nullString(az), nullString(desc), admin != 0
	a.CreatedAt, _ = store.ParseTime(created)
	a.StartedAt, _ = store.ParseTime(started)
	a.HeartbeatAt, _ = store.ParseTime(beat)
	return &a, fromJSON(conf, &a.Configurations)
}

func (s *Service) alive(a *agent) bool { return time.Since(a.HeartbeatAt) < defaultAgentDownTime }

func (s *Service) renderAgent(a *agent) obj {
	return obj{"id": a.ID, "agent_type": a.AgentType, "host": a.Host, "binary": a.Binary, "topic": a.Topic,
		"availability_zone": strOrNil(a.AvailabilityZone), "admin_state_up": a.AdminStateUp, "alive": s.alive(a),
		"description": strOrNil(a.Description), "configurations": nonNilMap(a.Configurations),
		"created_at": agentTime(a.CreatedAt), "started_at": agentTime(a.StartedAt), "heartbeat_timestamp": agentTime(a.HeartbeatAt)}
}

func agentNotFound(id string) *api.Error {
	return notFound("AgentNotFound", "Agent %s could not be found.", id)
}

func (s *Service) loadAgent(ctx context.Context, q store.Querier, id string) (*agent, error) {
	uid, ok := validUUID(id)
	if !ok {
		return nil, agentNotFound(id)
	}
	a, err := store.QueryOne(ctx, q, scanAgent, `SELECT `+agentColumns+` FROM agents WHERE id = ?`, uid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, agentNotFound(id)
	}
	return a, err
}

func (s *Service) agentList(r *http.Request, query string, args ...any) (*api.Response, error) {
	agents, err := store.QueryAll(r.Context(), s.db, scanAgent, query, args...)
	if err != nil {
		return nil, err
	}
	items := make([]obj, 0, len(agents))
	for _, a := range agents {
		items = append(items, s.renderAgent(a))
	}
	return s.list(r, "agents", items, nil)
}

// listAgents lists the agents; a caller the policy does not let read
// agents gets an empty list, as Neutron filters lists item by item.
func (s *Service) listAgents(r *http.Request) (*api.Response, error) {
	if !s.can(r, "get_agent", obj{}) {
		return s.list(r, "agents", nil, nil)
	}
	return s.agentList(r, `SELECT `+agentColumns+` FROM agents`)
}

// showAgent shows an agent; to a caller who may not read agents it does
// not exist.
func (s *Service) showAgent(r *http.Request) (*api.Response, error) {
	if !s.can(r, "get_agent", obj{}) {
		return nil, agentNotFound(r.PathValue("id"))
	}
	a, err := s.loadAgent(r.Context(), s.db, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return show(r, "agent", s.renderAgent(a)), nil
}

func (s *Service) updateAgent(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "update_agent", obj{}); err != nil {
		return nil, err
	}
	b, err := decodeBody[struct {
		AdminStateUp *bool                `json:"admin_state_up"`
		Description  api.Optional[string] `json:"description"`
	}](r, "agent")
	if err != nil {
		return nil, err
	}
	var a *agent
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		ctx := r.Context()
		var err error
		if a, err = s.loadAgent(ctx, tx, r.PathValue("id")); err != nil {
			return err
		}
		if b.AdminStateUp != nil {
			a.AdminStateUp = *b.AdminStateUp
		}
		if b.Description.Set {
			a.Description = nil
			if !b.Description.Null {
				v := b.Description.Value
				a.Description = &v
			}
		}
		_, err = tx.Exec(ctx, `UPDATE agents SET admin_state_up = ?, description = ? WHERE id = ?`, boolInt(a.AdminStateUp), a.Description, a.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, obj{"agent": s.renderAgent(a)}), nil
}

func (s *Service) deleteAgent(r *http.Request) (*api.Response, error) {
	if err := s.authorize(r, "delete_agent", obj{}); err != nil {
		return nil, err
	}
	a, err := s.loadAgent(r.Context(), s.db, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(r.Context(), `DELETE FROM agents WHERE id = ?`, a.ID); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

// binding describes one of the scheduling tables: which networks a DHCP
// agent serves, which routers an L3 agent hosts.
type binding struct {
	table, column, agentType string
	invalid                  func(agentID string) *api.Error
	already, notHosted       func(resID, agentID string) *api.Error
}

var dhcpBinding = binding{
	table: "network_dhcp_agents", column: "network_id", agentType: AgentDHCP,
	invalid: func(id string) *api.Error {
		return notFound("InvalidDHCPAgent", "Agent %s is not a valid DHCP Agent or has been disabled.", id)
	},
	already: func(res, id string) *api.Error {
		return inUse("NetworkHostedByDHCPAgent", "The network %s has been already hosted by the DHCP Agent %s.", res, id)
	},
	notHosted: func(res, id string) *api.Error {
		return inUse("NetworkNotHostedByDhcpAgent", "The network %s is not hosted by the DHCP Agent %s.", res, id)
	},
}

var l3Binding = binding{
	table: "router_l3_agents", column: "router_id", agentType: AgentL3,
	invalid: func(id string) *api.Error {
		return notFound("InvalidL3Agent", "Agent %s is not a L3 Agent or has been disabled", id)
	},
	already: func(res, id string) *api.Error {
		return inUse("RouterHostedByL3Agent", "The router %s has been already hosted by the L3 Agent %s.", res, id)
	},
	notHosted: func(res, id string) *api.Error {
		return inUse("RouterNotHostedByL3Agent", "The router %s is not hosted by the L3 Agent %s.", res, id)
	},
}

// agentOf loads the {id} agent and checks it is of the binding's type
// and enabled.
func (s *Service) agentOf(ctx context.Context, q store.Querier, b binding, id string) (*agent, error) {
	a, err := s.loadAgent(ctx, q, id)
	if err != nil {
		return nil, err
	}
	if a.AgentType != b.agentType || !a.AdminStateUp {
		return nil, b.invalid(a.ID)
	}
	return a, nil
}

// agentOfPath loads the agent the path names, for a caller who may read
// agents.
func (s *Service) agentOfPath(r *http.Request) (*agent, error) {
	if err := s.authorize(r, "get_agent", obj{}); err != nil {
		return nil, err
	}
	return s.loadAgent(r.Context(), s.db, r.PathValue("id"))
}

func (s *Service) listAgentNetworks(r *http.Request) (*api.Response, error) {
	a, err := s.agentOfPath(r)
	if err != nil {
		return nil, err
	}
	nets, err := store.QueryAll(r.Context(), s.db, scanNetwork, `SELECT `+networkColumns+` FROM networks WHERE id IN
		(SELECT network_id FROM network_dhcp_agents WHERE agent_id = ?)`, a.ID)
	if err != nil {
		return nil, err
	}
	items, err := renderAll(nets, func(n *network) (obj, error) { return s.showNetworkObj(r, s.db, n) })
	if err != nil {
		return nil, err
	}
	return s.list(r, "networks", items, nil)
}

func (s *Service) listAgentRouters(r *http.Request) (*api.Response, error) {
	a, err := s.agentOfPath(r)
	if err != nil {
		return nil, err
	}
	rts, err := store.QueryAll(r.Context(), s.db, scanRouter, `SELECT `+routerColumns+` FROM routers WHERE id IN
		(SELECT router_id FROM router_l3_agents WHERE agent_id = ?)`, a.ID)
	if err != nil {
		return nil, err
	}
	items, err := renderAll(rts, func(rt *router) (obj, error) { return s.routerObj(r.Context(), s.db, r, rt) })
	if err != nil {
		return nil, err
	}
	return s.list(r, "routers", items, nil)
}

// bind adds a resource to an agent (POST /agents/{id}/dhcp-networks
// or l3-routers).
func (s *Service) bind(b binding, field string, load func(ctx context.Context, q store.Querier, c caller, id string) (string, error)) api.HandlerFunc {
	return func(r *http.Request) (*api.Response, error) {
		if err := s.authorize(r, "update_agent", obj{}); err != nil {
			return nil, err
		}
		var body map[string]string
		if err := api.DecodeJSON(r, &body); err != nil {
			return nil, err
		}
		resID, ok := body[field]
		if !ok || len(body) != 1 {
			return nil, badRequest("agent", "Failed to parse request. Required attribute '%s' not specified", field)
		}
		c := s.caller(r)
		err := s.writeTx(r.Context(), func(tx *store.Tx) error {
			ctx := r.Context()
			a, err := s.agentOf(ctx, tx, b, r.PathValue("id"))
			if err != nil {
				return err
			}
			id, err := load(ctx, tx, c, resID)
			if err != nil {
				return err
			}
			n, err := count(ctx, tx, `SELECT COUNT(*) FROM `+b.table+` WHERE `+b.column+` = ? AND agent_id = ?`, id, a.ID)
			if err != nil {
				return err
			}
			if n > 0 {
				return b.already(id, a.ID)
			}
			_, err = tx.Exec(ctx, `INSERT INTO `+b.table+` (`+b.column+`, agent_id) VALUES (?, ?)`, id, a.ID)
			return err
		})
		if err != nil {
			return nil, err
		}
		return &api.Response{Status: http.StatusCreated}, nil
	}
}

// unbind removes a resource from an agent.
func (s *Service) unbind(b binding) api.HandlerFunc {
	return func(r *http.Request) (*api.Response, error) {
		if err := s.authorize(r, "update_agent", obj{}); err != nil {
			return nil, err
		}
		a, err := s.loadAgent(r.Context(), s.db, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		resID := r.PathValue("res")
		res, err := s.db.Exec(r.Context(), `DELETE FROM `+b.table+` WHERE `+b.column+` = ? AND agent_id = ?`, resID, a.ID)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, b.notHosted(resID, a.ID)
		}
		return api.NoContent(), nil
	}
}

// hostingAgents lists the agents bound to a network or router.
func (s *Service) hostingAgents(b binding, load func(ctx context.Context, q store.Querier, c caller, id string) (string, error)) api.HandlerFunc {
	return func(r *http.Request) (*api.Response, error) {
		if err := s.authorize(r, "get_agent", obj{}); err != nil {
			return nil, err
		}
		id, err := load(r.Context(), s.db, s.caller(r), r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return s.agentList(r, `SELECT `+agentColumns+` FROM agents WHERE id IN (SELECT agent_id FROM `+b.table+` WHERE `+b.column+` = ?)`, id)
	}
}

func (s *Service) networkID(ctx context.Context, q store.Querier, c caller, id string) (string, error) {
	n, err := s.loadNetwork(ctx, q, c, id)
	if err != nil {
		return "", err
	}
	return n.ID, nil
}

func (s *Service) routerID(ctx context.Context, q store.Querier, c caller, id string) (string, error) {
	rt, err := s.loadRouter(ctx, q, c, id)
	if err != nil {
		return "", err
	}
	return rt.ID, nil
}

// scheduleTx binds a network (or router) to the least loaded alive,
// enabled agent of the binding's type, if it has none yet, and reports
// whether it bound it. Without agents it is left for autoScheduleTx when
// one reports.
func (s *Service) scheduleTx(ctx context.Context, tx *store.Tx, b binding, resID string) (bool, error) {
	n, err := count(ctx, tx, `SELECT COUNT(*) FROM `+b.table+` WHERE `+b.column+` = ?`, resID)
	if err != nil || n > 0 {
		return false, err
	}
	agents, err := store.QueryAll(ctx, tx, scanAgent, `SELECT `+agentColumns+` FROM agents WHERE agent_type = ? AND admin_state_up = 1 ORDER BY id`, b.agentType)
	if err != nil {
		return false, err
	}
	best, bestLoad := "", -1
	for _, a := range agents {
		if !s.alive(a) {
			continue
		}
		load, err := count(ctx, tx, `SELECT COUNT(*) FROM `+b.table+` WHERE agent_id = ?`, a.ID)
		if err != nil {
			return false, err
		}
		if bestLoad < 0 || load < bestLoad {
			best, bestLoad = a.ID, load
		}
	}
	if best == "" {
		return false, nil
	}
	_, err = tx.Exec(ctx, `INSERT INTO `+b.table+` (`+b.column+`, agent_id) VALUES (?, ?)`, resID, best)
	return err == nil, err
}

func (s *Service) agentRoutes() []api.Route {
	type R = api.Route
	return []R{
		{Method: "GET", Pattern: "/v2.0/agents", Handler: s.listAgents},
		{Method: "GET", Pattern: "/v2.0/agents/{id}", Handler: s.showAgent},
		{Method: "PUT", Pattern: "/v2.0/agents/{id}", Handler: s.updateAgent},
		{Method: "DELETE", Pattern: "/v2.0/agents/{id}", Handler: s.deleteAgent},
		{Method: "GET", Pattern: "/v2.0/agents/{id}/dhcp-networks", Handler: s.listAgentNetworks},
		{Method: "POST", Pattern: "/v2.0/agents/{id}/dhcp-networks", Handler: s.bind(dhcpBinding, "network_id", s.networkID)},
		{Method: "DELETE", Pattern: "/v2.0/agents/{id}/dhcp-networks/{res}", Handler: s.unbind(dhcpBinding)},
		{Method: "GET", Pattern: "/v2.0/networks/{id}/dhcp-agents", Handler: s.hostingAgents(dhcpBinding, s.networkID)},
		{Method: "GET", Pattern: "/v2.0/agents/{id}/l3-routers", Handler: s.listAgentRouters},
		{Method: "POST", Pattern: "/v2.0/agents/{id}/l3-routers", Handler: s.bind(l3Binding, "router_id", s.routerID)},
		{Method: "DELETE", Pattern: "/v2.0/agents/{id}/l3-routers/{res}", Handler: s.unbind(l3Binding)},
		{Method: "GET", Pattern: "/v2.0/routers/{id}/l3-agents", Handler: s.hostingAgents(l3Binding, s.routerID)},
	}
}
