package compute

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// Host aggregates group hosts for operators; an aggregate with an
// "availability_zone" metadata key is an availability zone, as in Nova,
// and its hosts report that zone whatever their agents say.

type aggregate struct {
	ID        int
	UUID      string
	Name      string
	Metadata  map[string]string
	CreatedAt string
	UpdatedAt *string
	Hosts     []string
}

func scanAggregate(row store.Scanner) (aggregate, error) {
	var a aggregate
	var md string
	err := row.Scan(&a.ID, &a.UUID, &a.Name, &md, &a.CreatedAt, &a.UpdatedAt)
	a.Metadata = fromJSON[map[string]string](md)
	if a.Metadata == nil {
		a.Metadata = map[string]string{}
	}
	return a, err
}

const aggregateCols = `id, uuid, name, metadata, created_at, updated_at`

// aggregateZone is the zone a host has through its aggregates, skipping
// aggregate skip (0: none).
func aggregateZone(ctx context.Context, q store.Querier, hostName string, skip int) (string, error) {
	rows, err := q.Query(ctx, `SELECT a.id, a.metadata FROM compute_aggregates a JOIN compute_aggregate_hosts h ON h.aggregate_id = a.id WHERE h.host = ? ORDER BY a.id`, hostName)
	if err != nil {
		return "", fmt.Errorf("zone of %s: %w", hostName, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int
		var md string
		if err := rows.Scan(&id, &md); err != nil {
			return "", err
		}
		if z := fromJSON[map[string]string](md)["availability_zone"]; z != "" && id != skip {
			return z, nil
		}
	}
	return "", rows.Err()
}

func (s *Service) loadAggregate(ctx context.Context, q store.Querier, idStr string) (aggregate, error) {
	id, err := strconv.Atoi(idStr)
	if err != nil {
		return aggregate{}, api.BadRequest("Invalid aggregate id %s", idStr)
	}
	a, err := store.QueryOne(ctx, q, scanAggregate, `SELECT `+aggregateCols+` FROM compute_aggregates WHERE id = ?`, id)
	if isNoRows(err) {
		return a, api.NotFound("Aggregate %s could not be found.", idStr)
	}
	if err != nil {
		return a, fmt.Errorf("get aggregate %s: %w", idStr, err)
	}
	a.Hosts, err = store.QueryStrings(ctx, q, `SELECT host FROM compute_aggregate_hosts WHERE aggregate_id = ? ORDER BY host`, id)
	if a.Hosts == nil {
		a.Hosts = []string{}
	}
	return a, err
}

func (s *Service) aggregateView(r *http.Request, a aggregate, full bool) map[string]any {
	var zone any
	if z, ok := a.Metadata["availability_zone"]; ok {
		zone = z
	}
	out := map[string]any{"id": a.ID, "name": a.Name, "availability_zone": zone, "created_at": isoMicro(parseTime(a.CreatedAt)),
		"updated_at": nullTime(a.UpdatedAt, isoMicro), "deleted": false, "deleted_at": nil}
	if at(r, 41) {
		out["uuid"] = a.UUID
	}
	if full {
		out["hosts"] = a.Hosts
		out["metadata"] = a.Metadata
	}
	return out
}

func (s *Service) listAggregates(r *http.Request) (*api.Response, error) {
	ids, err := store.QueryStrings(r.Context(), s.db, `SELECT CAST(id AS TEXT) FROM compute_aggregates ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list aggregates: %w", err)
	}
	out := []map[string]any{}
	for _, id := range ids {
		a, err := s.loadAggregate(r.Context(), s.db, id)
		if err != nil {
			return nil, err
		}
		out = append(out, s.aggregateView(r, a, true))
	}
	return api.JSON(http.StatusOK, map[string]any{"aggregates": out}), nil
}

func (s *Service) showAggregate(r *http.Request) (*api.Response, error) {
	a, err := s.loadAggregate(r.Context(), s.db, r.PathValue("aggregate_id"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"aggregate": s.aggregateView(r, a, true)}), nil
}

type aggregateBody struct {
	Aggregate *struct {
		Name *string              `json:"name"`
		Zone api.Optional[string] `json:"availability_zone"`
	} `json:"aggregate"`
}

// checkZoneName refuses zone names Nova refuses: empty, too long, or with
// a colon (which separates zone from host in server create).
func checkZoneName(z string) error {
	if z == "" || len(z) > 255 {
		return api.BadRequest("Invalid input for field/attribute availability_zone. Value: %s.", z)
	}
	for _, c := range z {
		if c == ':' {
			return api.BadRequest("Invalid input for field/attribute availability_zone. Value: %s. Availability zone names cannot contain ':'", z)
		}
	}
	return nil
}

func (s *Service) createAggregate(r *http.Request) (*api.Response, error) {
	var body aggregateBody
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.Aggregate
	if in == nil || in.Name == nil {
		return nil, api.BadRequest("Invalid input for field/attribute aggregate. 'name' is a required property")
	}
	if err := checkName("name", *in.Name, 255); err != nil {
		return nil, err
	}
	a := aggregate{UUID: newID(), Name: *in.Name, Metadata: map[string]string{}, CreatedAt: store.FormatTime(now()), Hosts: []string{}}
	if in.Zone.Set && !in.Zone.Null {
		if err := checkZoneName(in.Zone.Value); err != nil {
			return nil, err
		}
		a.Metadata["availability_zone"] = in.Zone.Value
	}
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRow(r.Context(), `SELECT COUNT(*) FROM compute_aggregates WHERE name = ?`, a.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return api.Conflict("Aggregate %s already exists.", a.Name)
		}
		if err := tx.QueryRow(r.Context(), `SELECT COALESCE(MAX(id), 0) + 1 FROM compute_aggregates`).Scan(&a.ID); err != nil {
			return err
		}
		_, err := tx.Exec(r.Context(), `INSERT INTO compute_aggregates (id, uuid, name, metadata, created_at) VALUES (?, ?, ?, ?, ?)`,
			a.ID, a.UUID, a.Name, jsonText(a.Metadata), a.CreatedAt)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"aggregate": s.aggregateView(r, a, false)}), nil
}

// changeAggregate applies fn to an aggregate in one transaction, saves it
// and re-derives the zones of its hosts (before and after).
func (s *Service) changeAggregate(r *http.Request, fn func(tx *store.Tx, a *aggregate) error) (*api.Response, error) {
	var a aggregate
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		var err error
		if a, err = s.loadAggregate(r.Context(), tx, r.PathValue("aggregate_id")); err != nil {
			return err
		}
		before := append([]string(nil), a.Hosts...)
		if err := fn(tx, &a); err != nil {
			return err
		}
		// A host can be in one zone only.
		if z, ok := a.Metadata["availability_zone"]; ok {
			for _, h := range a.Hosts {
				other, err := aggregateZone(r.Context(), tx, h, a.ID)
				if err != nil {
					return err
				}
				if other != "" && other != z {
					return api.BadRequest("Cannot update aggregate %d. Reason: One or more hosts already in availability zone(s) [%s].", a.ID, other)
				}
			}
		}
		ts := store.FormatTime(now())
		a.UpdatedAt = &ts
		if _, err := tx.Exec(r.Context(), `UPDATE compute_aggregates SET name = ?, metadata = ?, updated_at = ? WHERE id = ?`,
			a.Name, jsonText(a.Metadata), ts, a.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(r.Context(), `DELETE FROM compute_aggregate_hosts WHERE aggregate_id = ?`, a.ID); err != nil {
			return err
		}
		for _, h := range a.Hosts {
			if _, err := tx.Exec(r.Context(), `INSERT INTO compute_aggregate_hosts (aggregate_id, host) VALUES (?, ?)`, a.ID, h); err != nil {
				return err
			}
		}
		return s.rezone(r.Context(), tx, append(before, a.Hosts...))
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"aggregate": s.aggregateView(r, a, true)}), nil
}

// rezone recomputes the zone of hosts after their aggregates changed, in
// the aggregate's transaction: aggregate_zone, which heartbeats read in
// their own update, and the zone it gives.
func (s *Service) rezone(ctx context.Context, tx *store.Tx, hosts []string) error {
	for _, h := range hosts {
		var reported string
		err := tx.QueryRow(ctx, `SELECT reported_zone FROM compute_hosts WHERE host = ?`, h).Scan(&reported)
		if isNoRows(err) {
			continue
		}
		if err != nil {
			return err
		}
		aggZone, err := aggregateZone(ctx, tx, h, 0)
		if err != nil {
			return err
		}
		z := aggZone
		if z == "" {
			z = s.ownZone(reported)
		}
		if _, err := tx.Exec(ctx, `UPDATE compute_hosts SET zone = ?, aggregate_zone = ? WHERE host = ?`, z, aggZone, h); err != nil {
			return fmt.Errorf("zone of %s: %w", h, err)
		}
	}
	return nil
}

// rezoneAll fills aggregate_zone for the hosts of every aggregate, once,
// when a database from before that column is migrated.
func (s *Service) rezoneAll(ctx context.Context) error {
	return s.writeTx(ctx, func(tx *store.Tx) error {
		hosts, err := store.QueryStrings(ctx, tx, `SELECT DISTINCT host FROM compute_aggregate_hosts`)
		if err != nil {
			return fmt.Errorf("hosts in aggregates: %w", err)
		}
		return s.rezone(ctx, tx, hosts)
	})
}

func (s *Service) updateAggregate(r *http.Request) (*api.Response, error) {
	var body aggregateBody
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.Aggregate
	if in == nil || (in.Name == nil && !in.Zone.Set) {
		return nil, api.BadRequest("Invalid input for field/attribute aggregate. 'name' or 'availability_zone' is required")
	}
	if in.Name != nil {
		if err := checkName("name", *in.Name, 255); err != nil {
			return nil, err
		}
	}
	if in.Zone.Set && !in.Zone.Null {
		if err := checkZoneName(in.Zone.Value); err != nil {
			return nil, err
		}
	}
	return s.changeAggregate(r, func(tx *store.Tx, a *aggregate) error {
		if in.Name != nil && *in.Name != a.Name {
			var n int
			if err := tx.QueryRow(r.Context(), `SELECT COUNT(*) FROM compute_aggregates WHERE name = ?`, *in.Name).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return api.Conflict("Aggregate %s already exists.", *in.Name)
			}
			a.Name = *in.Name
		}
		if in.Zone.Set {
			if in.Zone.Null {
				delete(a.Metadata, "availability_zone")
			} else {
				a.Metadata["availability_zone"] = in.Zone.Value
			}
		}
		return nil
	})
}

func (s *Service) deleteAggregate(r *http.Request) (*api.Response, error) {
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		a, err := s.loadAggregate(r.Context(), tx, r.PathValue("aggregate_id"))
		if err != nil {
			return err
		}
		if len(a.Hosts) > 0 {
			return api.BadRequest("Invalid aggregate action delete for aggregate %d. Reason: Host aggregate is not empty.", a.ID)
		}
		_, err = tx.Exec(r.Context(), `DELETE FROM compute_aggregates WHERE id = ?`, a.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &api.Response{Status: http.StatusOK}, nil
}

// aggregateAction serves add_host, remove_host and set_metadata.
func (s *Service) aggregateAction(r *http.Request) (*api.Response, error) {
	var body struct {
		AddHost *struct {
			Host string `json:"host"`
		} `json:"add_host"`
		RemoveHost *struct {
			Host string `json:"host"`
		} `json:"remove_host"`
		SetMetadata *struct {
			Metadata map[string]*string `json:"metadata"`
		} `json:"set_metadata"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	switch {
	case body.AddHost != nil:
		name := body.AddHost.Host
		return s.changeAggregate(r, func(tx *store.Tx, a *aggregate) error {
			if _, err := s.hostByName(r.Context(), tx, name); err != nil {
				return api.NotFound("Compute host %s could not be found.", name)
			}
			if contains(a.Hosts, name) {
				return api.Conflict("Aggregate %d already has host %s.", a.ID, name)
			}
			a.Hosts = append(a.Hosts, name)
			sort.Strings(a.Hosts)
			return nil
		})
	case body.RemoveHost != nil:
		name := body.RemoveHost.Host
		return s.changeAggregate(r, func(_ *store.Tx, a *aggregate) error {
			if !contains(a.Hosts, name) {
				return api.NotFound("Cannot remove host %s in aggregate %d", name, a.ID)
			}
			a.Hosts = keep(a.Hosts, func(h string) bool { return h != name })
			if a.Hosts == nil {
				a.Hosts = []string{}
			}
			return nil
		})
	case body.SetMetadata != nil:
		md := body.SetMetadata.Metadata
		if md == nil {
			return nil, api.BadRequest("Invalid input for field/attribute set_metadata. 'metadata' is a required property")
		}
		for k, v := range md {
			if k == "" || len(k) > 255 || (v != nil && len(*v) > 255) {
				return nil, api.BadRequest("Invalid input for field/attribute metadata. Value: %s.", k)
			}
			if k == "availability_zone" && v != nil {
				if err := checkZoneName(*v); err != nil {
					return nil, err
				}
			}
		}
		return s.changeAggregate(r, func(_ *store.Tx, a *aggregate) error {
			for k, v := range md {
				if v == nil {
					delete(a.Metadata, k)
				} else {
					a.Metadata[k] = *v
				}
			}
			return nil
		})
	}
	raw, _ := json.Marshal(body)
	return nil, api.BadRequest("Invalid aggregate action: %s", raw)
}

// os-hosts (before 2.43)

func (s *Service) hostsGone(r *http.Request) error {
	if at(r, 43) {
		return api.NotFound("The resource could not be found.")
	}
	return nil
}

func (s *Service) listOSHosts(r *http.Request) (*api.Response, error) {
	if err := s.hostsGone(r); err != nil {
		return nil, err
	}
	hs, err := s.allHosts(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	zone := r.URL.Query().Get("zone")
	out := []map[string]any{}
	for _, h := range hs {
		if zone != "" && h.Zone != zone {
			continue
		}
		out = append(out, map[string]any{"host_name": h.Host, "service": "compute", "zone": h.Zone})
	}
	cs, err := s.controlServices(r.Context(), s.db)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if zone == "" || zone == internalZone {
			out = append(out, map[string]any{"host_name": c.Host, "service": osHostsService(c.Binary), "zone": internalZone})
		}
	}
	return api.JSON(http.StatusOK, map[string]any{"hosts": out}), nil
}

// showOSHost answers a host's resources: total, used now, used at most
// (the same here, as claims are what is used) and per project.
func (s *Service) showOSHost(r *http.Request) (*api.Response, error) {
	if err := s.hostsGone(r); err != nil {
		return nil, err
	}
	name := r.PathValue("host_name")
	h, err := s.hostByName(r.Context(), s.db, name)
	if err != nil {
		return nil, api.NotFound("Compute host %s could not be found.", name)
	}
	res := func(project string, cpu, mem, disk int) map[string]any {
		return map[string]any{"resource": map[string]any{"host": h.Host, "project": project, "cpu": cpu, "memory_mb": mem, "disk_gb": disk}}
	}
	rows, err := s.db.Query(r.Context(), `SELECT i.project_id, COALESCE(SUM(a.vcpus), 0), COALESCE(SUM(a.memory_mb), 0), COALESCE(SUM(a.disk_gb), 0)
		FROM compute_allocations a JOIN compute_instances i ON i.id = a.instance_id WHERE a.host = ? GROUP BY i.project_id ORDER BY i.project_id`, h.Host)
	if err != nil {
		return nil, fmt.Errorf("host resources: %w", err)
	}
	defer rows.Close()
	var per []map[string]any
	cpu, mem, disk := 0, 0, 0
	for rows.Next() {
		var p string
		var c, m, d int
		if err := rows.Scan(&p, &c, &m, &d); err != nil {
			return nil, err
		}
		cpu, mem, disk = cpu+c, mem+m, disk+d
		per = append(per, res(p, c, m, d))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := []map[string]any{res("(total)", h.VCPUs, h.MemoryMB, h.LocalGB), res("(used_now)", cpu, mem, disk), res("(used_max)", cpu, mem, disk)}
	out = append(out, per...)
	return api.JSON(http.StatusOK, map[string]any{"host": out}), nil
}
