package network

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

var macPattern = regexp.MustCompile(`^fa:16:3e:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$`)

func fixedIPs(p map[string]any) []string {
	var out []string
	for _, f := range p["fixed_ips"].([]any) {
		out = append(out, f.(map[string]any)["ip_address"].(string))
	}
	return out
}

func TestPortIPAM(t *testing.T) {
	h := newHarness(t)
	nid := h.network("a", nil)["id"].(string)
	sn := h.subnet("a", nid, "10.0.0.0/24", nil)
	sid := sn["id"].(string)
	p1 := h.port("a", nid, map[string]any{"name": "p1"})
	if got := fixedIPs(p1); len(got) != 1 || got[0] != "10.0.0.2" {
		t.Fatalf("first port %v", got)
	}
	if !macPattern.MatchString(p1["mac_address"].(string)) || p1["status"] != "DOWN" || p1["binding:vnic_type"] != "normal" {
		t.Fatalf("port %v", p1)
	}
	if _, ok := p1["binding:vif_type"]; ok {
		t.Fatalf("binding details shown to a member: %v", p1)
	}
	if len(p1["security_groups"].([]any)) != 1 {
		t.Fatalf("default group not applied %v", p1["security_groups"])
	}
	p2 := h.port("a", nid, map[string]any{"fixed_ips": []map[string]any{{"subnet_id": sid, "ip_address": "10.0.0.50"}}})
	if got := fixedIPs(p2); got[0] != "10.0.0.50" {
		t.Fatalf("explicit %v", got)
	}
	h.fail("a", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "fixed_ips": []map[string]any{{"ip_address": "10.0.0.50"}}}}, http.StatusConflict, "IpAddressAlreadyAllocated")
	h.fail("a", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "fixed_ips": []map[string]any{{"subnet_id": sid, "ip_address": "10.9.0.5"}}}}, http.StatusBadRequest, "InvalidIpForSubnet")
	h.fail("a", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "fixed_ips": []map[string]any{{"ip_address": "10.9.0.5"}}}}, http.StatusBadRequest, "InvalidIpForNetwork")
	h.fail("a", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "mac_address": p1["mac_address"]}}, http.StatusConflict, "MacAddressInUse")
	h.fail("a", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "mac_address": "zz"}}, http.StatusBadRequest, "InvalidInput")
	p3 := h.port("a", nid, map[string]any{"mac_address": "FA:16:3E:00:00:01", "device_owner": "compute:nova", "device_id": "vm1",
		"allowed_address_pairs": []map[string]any{{"ip_address": "10.0.0.200/32"}}, "extra_dhcp_opts": []map[string]any{{"opt_name": "bootfile-name", "opt_value": "pxelinux.0"}}})
	if p3["mac_address"] != "fa:16:3e:00:00:01" || fixedIPs(p3)[0] != "10.0.0.3" {
		t.Fatalf("p3 %v", p3)
	}
	pair := p3["allowed_address_pairs"].([]any)[0].(map[string]any)
	if pair["mac_address"] != "fa:16:3e:00:00:01" {
		t.Fatalf("pair %v", pair)
	}
	// Port security off forbids groups and address pairs.
	h.fail("a", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "port_security_enabled": false, "security_groups": []string{p1["security_groups"].([]any)[0].(string)}}}, http.StatusBadRequest, "InvalidInput")
	h.fail("a", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "port_security_enabled": false, "allowed_address_pairs": []map[string]any{{"ip_address": "10.0.0.9"}}}}, http.StatusConflict, "AddressPairAndPortSecurityRequired")
	ns := h.port("a", nid, map[string]any{"port_security_enabled": false})
	if len(ns["security_groups"].([]any)) != 0 {
		t.Fatalf("no-security port has groups %v", ns["security_groups"])
	}
	h.fail("a", "PUT", "/v2.0/ports/"+p1["id"].(string), map[string]any{"port": map[string]any{"port_security_enabled": false}}, http.StatusConflict, "PortSecurityPortHasSecurityGroup")
	// Admin binds a port; binding details appear for admins.
	b := h.json("admin", "PUT", "/v2.0/ports/"+p1["id"].(string), map[string]any{"port": map[string]any{"binding:host_id": "host1", "binding:profile": map[string]any{"k": "v"}}}, http.StatusOK)["port"].(map[string]any)
	if b["binding:vif_type"] != "bridge" || b["binding:host_id"] != "host1" {
		t.Fatalf("bound %v", b)
	}
	h.fail("a", "PUT", "/v2.0/ports/"+p1["id"].(string), map[string]any{"port": map[string]any{"binding:host_id": "h"}}, http.StatusForbidden, "")
	// Change fixed IPs: drop .2, take .77.
	u := h.json("a", "PUT", "/v2.0/ports/"+p1["id"].(string), map[string]any{"port": map[string]any{"fixed_ips": []map[string]any{{"ip_address": "10.0.0.77"}}}}, http.StatusOK)["port"].(map[string]any)
	if got := fixedIPs(u); len(got) != 1 || got[0] != "10.0.0.77" {
		t.Fatalf("reassigned %v", got)
	}
	p4 := h.port("a", nid, nil)
	if fixedIPs(p4)[0] != "10.0.0.2" {
		t.Fatalf("freed address not reused: %v", fixedIPs(p4))
	}
	// Filters.
	l := h.json("a", "GET", "/v2.0/ports?fixed_ips=ip_address%3D10.0.0.50", nil, http.StatusOK)
	if got := ids(l, "ports"); len(got) != 1 || got[0] != p2["id"] {
		t.Fatalf("fixed_ips filter %v", got)
	}
	l = h.json("a", "GET", "/v2.0/ports?fixed_ips=ip_address_substr%3D0.0.7", nil, http.StatusOK)
	if got := ids(l, "ports"); len(got) != 1 || got[0] != p1["id"] {
		t.Fatalf("substring filter %v", got)
	}
	l = h.json("a", "GET", "/v2.0/ports?device_owner=compute:nova", nil, http.StatusOK)
	if got := ids(l, "ports"); len(got) != 1 || got[0] != p3["id"] {
		t.Fatalf("device_owner filter %v", got)
	}
	h.fail("b", "GET", "/v2.0/ports/"+p1["id"].(string), nil, http.StatusNotFound, "PortNotFound")
	h.json("a", "DELETE", "/v2.0/ports/"+p2["id"].(string), nil, http.StatusNoContent)
	h.port("a", nid, map[string]any{"fixed_ips": []map[string]any{{"ip_address": "10.0.0.50"}}})
}

func TestPortIPv6AndExhaustion(t *testing.T) {
	h := newHarness(t)
	nid := h.network("a", nil)["id"].(string)
	h.subnet("a", nid, "10.0.0.0/30", nil) // one usable address after the gateway
	h.subnet("a", nid, "2001:db8::/64", map[string]any{"ip_version": 6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"})
	p := h.port("a", nid, map[string]any{"mac_address": "fa:16:3e:11:22:33"})
	got := fixedIPs(p)
	if len(got) != 2 || got[0] != "10.0.0.2" || got[1] != "2001:db8::f816:3eff:fe11:2233" {
		t.Fatalf("dual stack %v", got)
	}
	// The IPv4 subnet is full, the SLAAC one still gives addresses.
	p2 := h.port("a", nid, nil)
	if got := fixedIPs(p2); len(got) != 1 {
		t.Fatalf("v6-only port %v", got)
	}
	n2 := h.network("a", nil)["id"].(string)
	h.subnet("a", n2, "10.1.0.0/30", nil)
	h.port("a", n2, nil)
	h.fail("a", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": n2}}, http.StatusConflict, "IpAddressGenerationFailure")
}

// TestConcurrentAllocation creates ports in parallel on one subnet: every
// port must get an address and no address may be handed out twice.
func TestConcurrentAllocation(t *testing.T) {
	eachEngine(t, Config{}, func(t *testing.T, h *harness) {
		nid := h.network("a", nil)["id"].(string)
		h.subnet("a", nid, "10.0.0.0/24", nil)
		const workers, each = 8, 5
		var mu sync.Mutex
		seen := map[string]string{}
		macs := map[string]bool{}
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					status, body := h.do("a", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "name": fmt.Sprintf("w%d-%d", w, i)}})
					if status != http.StatusCreated {
						errs <- fmt.Errorf("status %d: %s", status, body)
						continue
					}
					var m struct {
						Port struct {
							ID       string `json:"id"`
							MAC      string `json:"mac_address"`
							FixedIPs []struct {
								IP string `json:"ip_address"`
							} `json:"fixed_ips"`
						} `json:"port"`
					}
					if err := jsonUnmarshal(body, &m); err != nil || len(m.Port.FixedIPs) != 1 {
						errs <- fmt.Errorf("bad port %s", body)
						continue
					}
					mu.Lock()
					ip := m.Port.FixedIPs[0].IP
					if other, dup := seen[ip]; dup {
						errs <- fmt.Errorf("address %s given to %s and %s", ip, other, m.Port.ID)
					}
					seen[ip] = m.Port.ID
					if macs[m.Port.MAC] {
						errs <- fmt.Errorf("mac %s given twice", m.Port.MAC)
					}
					macs[m.Port.MAC] = true
					mu.Unlock()
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if len(seen) != workers*each {
			t.Fatalf("%d distinct addresses for %d ports", len(seen), workers*each)
		}
		l := h.json("a", "GET", "/v2.0/ports", nil, http.StatusOK)
		if n := len(ids(l, "ports")); n != workers*each {
			t.Fatalf("%d ports listed", n)
		}
		t.Logf("%d transactions ran again after losing an allocation race", h.svc.retries.Load())
		// The default security group, created lazily by the first of the
		// concurrent port creations, exists once.
		if sgs := h.json("a", "GET", "/v2.0/security-groups?name=default", nil, http.StatusOK)["security_groups"].([]any); len(sgs) != 1 {
			t.Fatalf("%d default groups", len(sgs))
		}
	})
}

// TestUniqueKeysGuardAllocations shows the schema's last line of defence:
// whatever path writes them, an address cannot be allocated twice on a
// subnet nor a MAC used twice on a network, and a transaction that loses
// such a race is run again by writeTx.
func TestUniqueKeysGuardAllocations(t *testing.T) {
	eachEngine(t, Config{}, func(t *testing.T, h *harness) {
		ctx := context.Background()
		nid := h.network("a", nil)["id"].(string)
		sid := h.subnet("a", nid, "10.0.0.0/24", nil)["id"].(string)
		p := h.port("a", nid, nil)
		ip := fixedIPs(p)[0]
		other := h.port("a", nid, map[string]any{"fixed_ips": []any{}})
		_, err := h.svc.db.Exec(ctx, `INSERT INTO ip_allocations (subnet_id, ip_address, port_id, network_id) VALUES (?, ?, ?, ?)`, sid, ip, other["id"], nid)
		if !store.IsConflict(err) {
			t.Fatalf("second allocation of %s: %v", ip, err)
		}
		_, err = h.svc.db.Exec(ctx, `UPDATE ports SET mac_address = ? WHERE id = ?`, p["mac_address"], other["id"])
		if !store.IsConflict(err) {
			t.Fatalf("duplicate MAC: %v", err)
		}
		runs := 0
		err = h.svc.writeTx(ctx, func(tx *store.Tx) error {
			runs++
			if runs < 3 {
				return store.ErrRetry
			}
			return nil
		})
		if err != nil || runs != 3 {
			t.Fatalf("writeTx ran %d times: %v", runs, err)
		}
	})
}

// TestPortAddressChangeNamesServer: a change of a compute port's fixed
// IPs names its server in the update's event (Neutron's network-changed
// to Nova), so that compute shows the new addresses; other updates and
// other ports name none.
func TestPortAddressChangeNamesServer(t *testing.T) {
	h := newHarness(t)
	nid := h.network("a", nil)["id"].(string)
	sid := h.subnet("a", nid, "10.0.0.0/24", nil)["id"].(string)
	vm := h.port("a", nid, map[string]any{"device_owner": "compute:nova", "device_id": "vm1"})
	other := h.port("a", nid, map[string]any{"device_owner": "network:dhcp", "device_id": "dhcp1"})
	serversOf := func(id string) [][]string {
		h.events.mu.Lock()
		defer h.events.mu.Unlock()
		var out [][]string
		for _, e := range h.events.evs {
			if e.Resource == "port" && e.Action == "update" && e.ID == id {
				out = append(out, e.Servers)
			}
		}
		return out
	}
	h.json("a", "PUT", "/v2.0/ports/"+vm["id"].(string), map[string]any{"port": map[string]any{"name": "renamed"}}, http.StatusOK)
	two := []map[string]any{{"subnet_id": sid, "ip_address": fixedIPs(vm)[0]}, {"subnet_id": sid}}
	h.json("a", "PUT", "/v2.0/ports/"+vm["id"].(string), map[string]any{"port": map[string]any{"fixed_ips": two}}, http.StatusOK)
	h.json("a", "PUT", "/v2.0/ports/"+other["id"].(string), map[string]any{"port": map[string]any{"fixed_ips": []map[string]any{{"subnet_id": sid}}}}, http.StatusOK)
	if got := serversOf(vm["id"].(string)); len(got) != 2 || got[0] != nil || len(got[1]) != 1 || got[1][0] != "vm1" {
		t.Fatalf("events of the server's port: %v", got)
	}
	if got := serversOf(other["id"].(string)); len(got) != 1 || got[0] != nil {
		t.Fatalf("events of the DHCP port: %v", got)
	}
}
