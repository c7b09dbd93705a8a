package compute

import (
	"encoding/json"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// The os-hosts actions (before 2.43): host power actions and the
// enable/maintenance switch. As with Nova's libvirt driver, powering a
// host and maintenance mode are not something the compute service does
// (501); enabling and disabling scheduling is (the host's service).

// hostPowerAction serves GET /os-hosts/{host_name}/startup|shutdown|reboot.
func (s *Service) hostPowerAction(action string) func(*http.Request) (*api.Response, error) {
	return func(r *http.Request) (*api.Response, error) {
		if err := s.hostsGone(r); err != nil {
			return nil, err
		}
		name := r.PathValue("host_name")
		if _, err := s.hostByName(r.Context(), s.db, name); err != nil {
			return nil, api.NotFound("Compute host %s could not be found.", name)
		}
		return nil, api.Errorf(http.StatusNotImplemented, "Virt driver does not implement host %s.", action)
	}
}

// updateOSHost serves PUT /os-hosts/{host_name}: {"status": "enable" |
// "disable", "maintenance_mode": "enable" | "disable"}, at least one.
func (s *Service) updateOSHost(r *http.Request) (*api.Response, error) {
	if err := s.hostsGone(r); err != nil {
		return nil, err
	}
	var body map[string]json.RawMessage
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	vals := map[string]string{}
	for k, raw := range body {
		if k != "status" && k != "maintenance_mode" {
			return nil, api.BadRequest("Invalid input for field/attribute host. Additional properties are not allowed ('%s' was unexpected)", k)
		}
		var v string
		if json.Unmarshal(raw, &v) != nil || (v != "enable" && v != "disable") {
			return nil, api.BadRequest("Invalid input for field/attribute %s. Value: %s. %s is not one of ['enable', 'disable']", k, raw, raw)
		}
		vals[k] = v
	}
	if len(vals) == 0 {
		return nil, api.BadRequest("Invalid input for field/attribute host. 'status' or 'maintenance_mode' is a required property")
	}
	name := r.PathValue("host_name")
	h, err := s.hostByName(r.Context(), s.db, name)
	if err != nil {
		return nil, api.NotFound("Compute host %s could not be found.", name)
	}
	if _, ok := vals["maintenance_mode"]; ok {
		return nil, api.Errorf(http.StatusNotImplemented, "Virt driver does not implement host maintenance mode.")
	}
	disabled := vals["status"] == "disable"
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		_, err := tx.Exec(r.Context(), `UPDATE compute_hosts SET disabled = ?, disabled_reason = NULL, updated_at = ? WHERE host = ?`,
			boolInt(disabled), store.FormatTime(now()), h.Host)
		return err
	})
	if err != nil {
		return nil, err
	}
	status := "enabled"
	if disabled {
		status = "disabled"
	}
	return api.JSON(http.StatusOK, map[string]any{"host": h.Host, "status": status}), nil
}

// migrate serves the admin actions migrate and os-migrateLive. Moving a
// guest between hosts is not implemented: a server in a state Nova
// refuses is a 409 as there, and otherwise the answer is Nova's "no valid
// host" (400) when there is no other enabled, up host to move to (the
// one-machine cloud), or 501.
func (s *Service) migrate(r *http.Request, arg json.RawMessage, live bool) (*api.Response, error) {
	name, policy, states := "migrate", "os_compute_api:os-migrate-server:migrate", []string{vmActive, vmStopped}
	if live {
		name, policy, states = "os-migrateLive", "os_compute_api:os-migrate-server:migrate_live", []string{vmActive, vmPaused}
	}
	if string(arg) != "null" {
		var m map[string]any
		if err := json.Unmarshal(arg, &m); err != nil {
			return nil, api.BadRequest("Invalid input for field/attribute %s. Value: %s. %s is not of type 'object', 'null'", name, arg, arg)
		}
	} else if live {
		return nil, api.BadRequest("Invalid input for field/attribute os-migrateLive. Value: None. None is not of type 'object'")
	}
	i, err := s.serverFor(r, policy)
	if err != nil {
		return nil, err
	}
	if err := (stateAction{name: name, vmStates: states}).allows(i); err != nil {
		return nil, err
	}
	hosts, err := s.allHosts(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		if h.Host != i.host() && !h.Disabled && s.up(h) {
			return nil, api.Errorf(http.StatusNotImplemented, "Moving servers between hosts is not implemented.")
		}
	}
	return nil, api.BadRequest("No valid host was found. There is no other compute host to move instance %s to.", i.ID)
}

// restore and forceDelete are the deferred-delete actions. Nimbus deletes
// at once (Nova's default reclaim_instance_interval of 0), so no server is
// ever SOFT_DELETED: restore is Nova's 409 for any other state, and
// forceDelete deletes the server as DELETE does (202, as Nova answers it).
func (s *Service) restoreServer(r *http.Request) (*api.Response, error) {
	i, err := s.serverFor(r, "os_compute_api:os-deferred-delete:restore")
	if err != nil {
		return nil, err
	}
	return nil, invalidState("restore", i.ID, "vm_state", i.VMState)
}

func (s *Service) forceDeleteServer(r *http.Request) (*api.Response, error) {
	if _, err := s.serverFor(r, "os_compute_api:os-deferred-delete:force"); err != nil {
		return nil, err
	}
	if _, err := s.deleteServer(r); err != nil {
		return nil, err
	}
	return accepted(), nil
}
