package compute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// flavor is a row of compute_flavors.
type flavor struct {
	ID          string
	Name        string
	MemoryMB    int
	VCPUs       int
	RootGB      int
	EphemeralGB int
	Swap        int
	RxTx        float64
	IsPublic    bool
	Disabled    bool
	Description *string
	ExtraSpecs  map[string]string
	CreatedAt   string
	Seq         int
}

const flavorCols = `id, name, memory_mb, vcpus, root_gb, ephemeral_gb, swap, rxtx_factor, is_public, disabled, description, extra_specs, created_at, seq`

func scanFlavor(row store.Scanner) (flavor, error) {
	var f flavor
	var pub, dis int
	var specs string
	err := row.Scan(&f.ID, &f.Name, &f.MemoryMB, &f.VCPUs, &f.RootGB, &f.EphemeralGB, &f.Swap, &f.RxTx, &pub, &dis, &f.Description, &specs, &f.CreatedAt, &f.Seq)
	f.IsPublic, f.Disabled = pub == 1, dis == 1
	f.ExtraSpecs = fromJSON[map[string]string](specs)
	if f.ExtraSpecs == nil {
		f.ExtraSpecs = map[string]string{}
	}
	return f, err
}

// spec is the flavor as it travels to agents and is embedded in servers.
func (f flavor) spec() FlavorSpec {
	return FlavorSpec{ID: f.ID, Name: f.Name, VCPUs: f.VCPUs, MemoryMB: f.MemoryMB, RootGB: f.RootGB,
		EphemeralG: f.EphemeralGB, SwapMB: f.Swap, ExtraSpecs: f.ExtraSpecs}
}

// defaultFlavors are Nova's classic flavors with their historic ids, and
// the two small ones devstack creates for Tempest.
var defaultFlavors = []flavor{
	{ID: "1", Name: "m1.tiny", MemoryMB: 512, VCPUs: 1, RootGB: 1},
	{ID: "2", Name: "m1.small", MemoryMB: 2048, VCPUs: 1, RootGB: 20},
	{ID: "3", Name: "m1.medium", MemoryMB: 4096, VCPUs: 2, RootGB: 40},
	{ID: "4", Name: "m1.large", MemoryMB: 8192, VCPUs: 4, RootGB: 80},
	{ID: "5", Name: "m1.xlarge", MemoryMB: 16384, VCPUs: 8, RootGB: 160},
	{ID: "42", Name: "m1.nano", MemoryMB: 128, VCPUs: 1, RootGB: 1},
	{ID: "84", Name: "m1.micro", MemoryMB: 192, VCPUs: 1, RootGB: 1},
}

func (s *Service) seedFlavors(ctx context.Context) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		for i, f := range defaultFlavors {
			if _, err := tx.Exec(ctx, `INSERT INTO compute_flavors (`+flavorCols+`) VALUES (?, ?, ?, ?, ?, 0, 0, 1.0, 1, 0, NULL, '{}', ?, ?)`,
				f.ID, f.Name, f.MemoryMB, f.VCPUs, f.RootGB, store.FormatTime(now()), i+1); err != nil {
				return fmt.Errorf("seed flavor %s: %w", f.Name, err)
			}
		}
		return nil
	})
}

func (s *Service) getFlavor(ctx context.Context, q store.Querier, id string) (flavor, error) {
	f, err := store.QueryOne(ctx, q, scanFlavor, `SELECT `+flavorCols+` FROM compute_flavors WHERE id = ?`, id)
	if errors.Is(err, store.ErrNotFound) {
		return f, api.NotFound("Flavor %s could not be found.", id)
	}
	if err != nil {
		return f, fmt.Errorf("get flavor %s: %w", id, err)
	}
	return f, nil
}

// visibleFlavor returns a flavor the caller may use: public ones, and
// private ones their project was given access to (admins see all).
func (s *Service) visibleFlavor(ctx context.Context, q store.Querier, c caller, id string) (flavor, error) {
	f, err := s.getFlavor(ctx, q, id)
	if err != nil || f.IsPublic || c.admin {
		return f, err
	}
	var n int
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM compute_flavor_access WHERE flavor_id = ? AND project_id = ?`, id, c.project).Scan(&n); err != nil {
		return f, fmt.Errorf("flavor access %s: %w", id, err)
	}
	if n == 0 {
		return f, api.NotFound("Flavor %s could not be found.", id)
	}
	return f, nil
}

// flavorView renders a flavor for show, detail and create answers.
func (s *Service) flavorView(r *http.Request, f flavor, detail bool) map[string]any {
	out := map[string]any{"id": f.ID, "name": f.Name, "links": s.links(r, "flavors", f.ID)}
	if at(r, 55) {
		out["description"] = f.Description
	}
	if !detail {
		return out
	}
	out["ram"] = f.MemoryMB
	out["vcpus"] = f.VCPUs
	out["disk"] = f.RootGB
	out["OS-FLV-EXT-DATA:ephemeral"] = f.EphemeralGB
	out["OS-FLV-DISABLED:disabled"] = f.Disabled
	out["os-flavor-access:is_public"] = f.IsPublic
	out["rxtx_factor"] = f.RxTx
	if f.Swap == 0 && !at(r, 75) {
		out["swap"] = ""
	} else {
		out["swap"] = f.Swap
	}
	if at(r, 61) && s.can(r, "os_compute_api:os-flavor-extra-specs:index", map[string]any{"project_id": s.caller(r).project}) {
		out["extra_specs"] = f.ExtraSpecs
	}
	return out
}

var flavorSortKeys = map[string]func(a, b flavor) int{
	"flavorid":     func(a, b flavor) int { return strings.Compare(a.ID, b.ID) },
	"id":           func(a, b flavor) int { return a.Seq - b.Seq },
	"name":         func(a, b flavor) int { return strings.Compare(a.Name, b.Name) },
	"memory_mb":    func(a, b flavor) int { return a.MemoryMB - b.MemoryMB },
	"vcpus":        func(a, b flavor) int { return a.VCPUs - b.VCPUs },
	"root_gb":      func(a, b flavor) int { return a.RootGB - b.RootGB },
	"ephemeral_gb": func(a, b flavor) int { return a.EphemeralGB - b.EphemeralGB },
	"swap":         func(a, b flavor) int { return a.Swap - b.Swap },
	"created_at":   func(a, b flavor) int { return strings.Compare(a.CreatedAt, b.CreatedAt) },
	"is_public":    func(a, b flavor) int { return boolInt(a.IsPublic) - boolInt(b.IsPublic) },
	"disabled":     func(a, b flavor) int { return boolInt(a.Disabled) - boolInt(b.Disabled) },
	"rxtx_factor": func(a, b flavor) int {
		if a.RxTx < b.RxTx {
			return -1
		} else if a.RxTx > b.RxTx {
			return 1
		}
		return 0
	},
	"description": func(a, b flavor) int {
		var x, y string
		if a.Description != nil {
			x = *a.Description
		}
		if b.Description != nil {
			y = *b.Description
		}
		return strings.Compare(x, y)
	},
}

func (s *Service) listFlavors(r *http.Request) (*api.Response, error) { return s.flavorList(r, false) }
func (s *Service) listFlavorsDetail(r *http.Request) (*api.Response, error) {
	return s.flavorList(r, true)
}

// flavorList answers /flavors and /flavors/detail with Nova's filters:
// admins choose public, private or all (is_public=None, as the CLI
// sends it), everyone else sees public flavors and those shared with
// their project.
func (s *Service) flavorList(r *http.Request, detail bool) (*api.Response, error) {
	c := s.caller(r)
	q := r.URL.Query()
	var isPublic *bool = ptr(true)
	if c.admin {
		if v, ok := q["is_public"]; ok {
			switch {
			case strings.EqualFold(v[0], "none"):
				isPublic = nil
			default:
				b, ok := queryBool(v[0])
				if !ok {
					return nil, api.BadRequest("Invalid is_public filter [%s]", v[0])
				}
				isPublic = &b
			}
		}
	}
	minRAM, minDisk := 0, 0
	for _, f := range []struct {
		name string
		dst  *int
	}{{"minRam", &minRAM}, {"minDisk", &minDisk}} {
		if v := q.Get(f.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, api.BadRequest("Invalid %s filter [%s]", f.name, v)
			}
			*f.dst = n
		}
	}
	sortKey, sortDir := q.Get("sort_key"), q.Get("sort_dir")
	if sortKey == "" {
		sortKey = "flavorid"
	}
	if sortDir == "" {
		sortDir = "asc"
	}
	cmp, ok := flavorSortKeys[sortKey]
	if !ok {
		return nil, api.BadRequest("Invalid sort key %s", sortKey)
	}
	if sortDir != "asc" && sortDir != "desc" {
		return nil, api.BadRequest("Invalid sort direction %s", sortDir)
	}
	p, err := page(r)
	if err != nil {
		return nil, err
	}
	all, err := store.QueryAll(r.Context(), s.db, scanFlavor, `SELECT `+flavorCols+` FROM compute_flavors`)
	if err != nil {
		return nil, fmt.Errorf("list flavors: %w", err)
	}
	shared := map[string]bool{}
	if !c.admin {
		ids, err := store.QueryStrings(r.Context(), s.db, `SELECT flavor_id FROM compute_flavor_access WHERE project_id = ?`, c.project)
		if err != nil {
			return nil, fmt.Errorf("list flavor access: %w", err)
		}
		for _, id := range ids {
			shared[id] = true
		}
	}
	var items []flavor
	for _, f := range all {
		switch {
		case !c.admin && (f.Disabled || (!f.IsPublic && !shared[f.ID])):
			continue
		case c.admin && isPublic != nil && f.IsPublic != *isPublic:
			continue
		case f.MemoryMB < minRAM || f.RootGB < minDisk:
			continue
		}
		items = append(items, f)
	}
	sort.SliceStable(items, func(i, j int) bool {
		if sortDir == "desc" {
			return cmp(items[j], items[i]) < 0
		}
		return cmp(items[i], items[j]) < 0
	})
	items, _, err = paginate(items, p, func(f flavor) string { return f.ID })
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(items))
	for _, f := range items {
		out = append(out, s.flavorView(r, f, detail))
	}
	body := map[string]any{"flavors": out}
	if len(items) > 0 {
		if l := s.nextLinks(r, p, len(items), items[len(items)-1].ID); l != nil {
			body["flavors_links"] = l
		}
	}
	return api.JSON(http.StatusOK, body), nil
}

func ptr[T any](v T) *T { return &v }

func (s *Service) showFlavor(r *http.Request) (*api.Response, error) {
	f, err := s.visibleFlavor(r.Context(), s.db, s.caller(r), r.PathValue("flavor_id"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"flavor": s.flavorView(r, f, true)}), nil
}

var flavorIDPattern = regexp.MustCompile(`^[a-zA-Z0-9. _-]+$`)

type flavorCreate struct {
	Flavor *struct {
		Name        *string              `json:"name"`
		ID          json.RawMessage      `json:"id"`
		RAM         flexInt              `json:"ram"`
		VCPUs       flexInt              `json:"vcpus"`
		Disk        flexInt              `json:"disk"`
		Ephemeral   flexInt              `json:"OS-FLV-EXT-DATA:ephemeral"`
		Swap        flexInt              `json:"swap"`
		RxTx        *json.Number         `json:"rxtx_factor"`
		IsPublic    *novaBool            `json:"os-flavor-access:is_public"`
		Description api.Optional[string] `json:"description"`
	} `json:"flavor"`
}

func (s *Service) createFlavor(r *http.Request) (*api.Response, error) {
	var body flavorCreate
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	in := body.Flavor
	if in == nil {
		return nil, api.BadRequest("Invalid input for field/attribute flavor. Value: None. 'flavor' is a required property")
	}
	if in.Name == nil {
		return nil, api.BadRequest("Invalid input for field/attribute flavor. 'name' is a required property")
	}
	if err := checkName("name", *in.Name, 255); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		v    flexInt
	}{{"ram", in.RAM}, {"vcpus", in.VCPUs}, {"disk", in.Disk}} {
		if !f.v.Set {
			return nil, api.BadRequest("Invalid input for field/attribute flavor. '%s' is a required property", f.name)
		}
	}
	f := flavor{Name: *in.Name, RxTx: 1.0, IsPublic: true, ExtraSpecs: map[string]string{}}
	var err error
	if f.MemoryMB, err = intField("ram", in.RAM, 1, dbMaxInt); err != nil {
		return nil, err
	}
	if f.VCPUs, err = intField("vcpus", in.VCPUs, 1, dbMaxInt); err != nil {
		return nil, err
	}
	if f.RootGB, err = intField("disk", in.Disk, 0, dbMaxInt); err != nil {
		return nil, err
	}
	if in.Ephemeral.Set {
		if f.EphemeralGB, err = intField("OS-FLV-EXT-DATA:ephemeral", in.Ephemeral, 0, dbMaxInt); err != nil {
			return nil, err
		}
	}
	if in.Swap.Set {
		if f.Swap, err = intField("swap", in.Swap, 0, dbMaxInt); err != nil {
			return nil, err
		}
	}
	if in.RxTx != nil {
		v, err := in.RxTx.Float64()
		if err != nil || v <= 0 || v > 3.40282e+38 {
			return nil, api.BadRequest("Invalid input for field/attribute rxtx_factor. Value: %s.", in.RxTx.String())
		}
		f.RxTx = v
	}
	if in.IsPublic != nil {
		f.IsPublic = bool(*in.IsPublic)
	}
	if in.Description.Set {
		if !at(r, 55) {
			return nil, api.BadRequest("Invalid input for field/attribute flavor. Additional properties are not allowed ('description' was unexpected)")
		}
		if !in.Description.Null {
			if len([]rune(in.Description.Value)) > 65535 {
				return nil, api.BadRequest("Invalid input for field/attribute description. Value is too long.")
			}
			f.Description = &in.Description.Value
		}
	}
	switch id := strings.TrimSpace(string(in.ID)); {
	case id == "" || id == "null":
		f.ID = newID()
	default:
		var sid string
		var num json.Number
		if err := json.Unmarshal(in.ID, &sid); err != nil {
			// Nova's flavor_id type is string or number: an id given as
			// a JSON number is kept as its decimal string.
			if json.Unmarshal(in.ID, &num) != nil {
				return nil, api.BadRequest("Invalid input for field/attribute id. Value: %s. %s is not of type 'string', 'number', 'null'", id, id)
			}
			sid = num.String()
		}
		if sid == "" || len(sid) > 255 || !flavorIDPattern.MatchString(sid) || strings.TrimSpace(sid) != sid {
			return nil, api.BadRequest("Invalid input for field/attribute id. Value: %s. '%s' does not match '^(?! )[a-zA-Z0-9. _-]+(?<! )$'", sid, sid)
		}
		f.ID = sid
	}
	f.CreatedAt = store.FormatTime(now())
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRow(r.Context(), `SELECT COUNT(*) FROM compute_flavors WHERE name = ?`, f.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return api.Conflict("Flavor with name %s already exists.", f.Name)
		}
		if err := tx.QueryRow(r.Context(), `SELECT COUNT(*) FROM compute_flavors WHERE id = ?`, f.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return api.Conflict("Flavor with ID %s already exists.", f.ID)
		}
		if err := tx.QueryRow(r.Context(), `SELECT COALESCE(MAX(seq), 0) + 1 FROM compute_flavors`).Scan(&f.Seq); err != nil {
			return err
		}
		_, err := tx.Exec(r.Context(), `INSERT INTO compute_flavors (`+flavorCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, '{}', ?, ?)`,
			f.ID, f.Name, f.MemoryMB, f.VCPUs, f.RootGB, f.EphemeralGB, f.Swap, f.RxTx, boolInt(f.IsPublic), f.Description, f.CreatedAt, f.Seq)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create flavor: %w", err)
	}
	return api.JSON(http.StatusOK, map[string]any{"flavor": s.flavorView(r, f, true)}), nil
}

// updateFlavor changes a flavor's description, the only mutable field (2.55).
func (s *Service) updateFlavor(r *http.Request) (*api.Response, error) {
	if !at(r, 55) {
		return nil, api.Errorf(http.StatusMethodNotAllowed, "The method PUT is not allowed for this resource.")
	}
	var body struct {
		Flavor *struct {
			Description *string `json:"description"`
		} `json:"flavor"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Flavor == nil {
		return nil, api.BadRequest("Invalid input for field/attribute flavor. 'flavor' is a required property")
	}
	if body.Flavor.Description != nil && len([]rune(*body.Flavor.Description)) > 65535 {
		return nil, api.BadRequest("Invalid input for field/attribute description. Value is too long.")
	}
	id := r.PathValue("flavor_id")
	var f flavor
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		var err error
		if f, err = s.getFlavor(r.Context(), tx, id); err != nil {
			return err
		}
		f.Description = body.Flavor.Description
		_, err = tx.Exec(r.Context(), `UPDATE compute_flavors SET description = ? WHERE id = ?`, f.Description, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"flavor": s.flavorView(r, f, true)}), nil
}

func (s *Service) deleteFlavor(r *http.Request) (*api.Response, error) {
	id := r.PathValue("flavor_id")
	res, err := s.db.Exec(r.Context(), `DELETE FROM compute_flavors WHERE id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("delete flavor %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, api.NotFound("Flavor %s could not be found.", id)
	}
	return accepted(), nil
}

// Extra specs.

var extraSpecKey = regexp.MustCompile(`^[a-zA-Z0-9-_:. /]{1,255}$`)

// specValue accepts what Nova's schema does: strings, numbers and
// booleans, all kept as text.
func specValue(key string, raw json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", api.BadRequest("Invalid input for field/attribute %s.", key)
	}
	var out string
	switch t := v.(type) {
	case string:
		out = t
	case float64:
		out = strconv.FormatFloat(t, 'f', -1, 64)
	case bool:
		if t {
			out = "True"
		} else {
			out = "False"
		}
	default:
		return "", api.BadRequest("Invalid input for field/attribute %s. Value: %s. %s is not of type 'string', 'integer', 'number', 'boolean'", key, raw, raw)
	}
	if len(out) > 255 {
		return "", api.BadRequest("Invalid input for field/attribute %s. Value: %s. is too long", key, out)
	}
	return out, nil
}

func checkSpecs(specs map[string]json.RawMessage) (map[string]string, error) {
	out := make(map[string]string, len(specs))
	for k, raw := range specs {
		if !extraSpecKey.MatchString(k) {
			return nil, api.BadRequest("Invalid input for field/attribute extra_specs. Additional properties are not allowed ('%s' does not match any of the regexes: '^[a-zA-Z0-9-_:. /]{1,255}$')", k)
		}
		v, err := specValue(k, raw)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

func (s *Service) listExtraSpecs(r *http.Request) (*api.Response, error) {
	f, err := s.visibleFlavor(r.Context(), s.db, s.caller(r), r.PathValue("flavor_id"))
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"extra_specs": f.ExtraSpecs}), nil
}

func (s *Service) showExtraSpec(r *http.Request) (*api.Response, error) {
	f, err := s.visibleFlavor(r.Context(), s.db, s.caller(r), r.PathValue("flavor_id"))
	if err != nil {
		return nil, err
	}
	key := r.PathValue("key")
	v, ok := f.ExtraSpecs[key]
	if !ok {
		return nil, api.NotFound("Flavor %s has no extra specs with key %s.", f.ID, key)
	}
	return api.JSON(http.StatusOK, map[string]any{key: v}), nil
}

// changeSpecs applies fn to a flavor's extra specs in one transaction.
func (s *Service) changeSpecs(ctx context.Context, id string, fn func(specs map[string]string) error) error {
	return s.writeTx(ctx, func(tx *store.Tx) error {
		f, err := s.getFlavor(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := fn(f.ExtraSpecs); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE compute_flavors SET extra_specs = ? WHERE id = ?`, jsonText(f.ExtraSpecs), id)
		return err
	})
}

func (s *Service) createExtraSpecs(r *http.Request) (*api.Response, error) {
	var body struct {
		ExtraSpecs map[string]json.RawMessage `json:"extra_specs"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if body.ExtraSpecs == nil {
		return nil, api.BadRequest("Invalid input for field/attribute extra_specs. 'extra_specs' is a required property")
	}
	specs, err := checkSpecs(body.ExtraSpecs)
	if err != nil {
		return nil, err
	}
	err = s.changeSpecs(r.Context(), r.PathValue("flavor_id"), func(cur map[string]string) error {
		for k, v := range specs {
			cur[k] = v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"extra_specs": specs}), nil
}

func (s *Service) updateExtraSpec(r *http.Request) (*api.Response, error) {
	var body map[string]json.RawMessage
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	key := r.PathValue("key")
	if len(body) > 1 {
		return nil, api.BadRequest("Request body contains too many items")
	}
	if _, ok := body[key]; !ok {
		return nil, api.BadRequest("Request body and URI mismatch")
	}
	specs, err := checkSpecs(body)
	if err != nil {
		return nil, err
	}
	err = s.changeSpecs(r.Context(), r.PathValue("flavor_id"), func(cur map[string]string) error {
		cur[key] = specs[key]
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{key: specs[key]}), nil
}

func (s *Service) deleteExtraSpec(r *http.Request) (*api.Response, error) {
	id, key := r.PathValue("flavor_id"), r.PathValue("key")
	err := s.changeSpecs(r.Context(), id, func(cur map[string]string) error {
		if _, ok := cur[key]; !ok {
			return api.NotFound("Flavor %s has no extra specs with key %s.", id, key)
		}
		delete(cur, key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Nova answers 200 with no body (api-ref: "Delete An Extra Spec For
	// A Flavor"); Tempest checks the code.
	return &api.Response{Status: http.StatusOK}, nil
}

// Flavor access.

func (s *Service) accessList(ctx context.Context, q store.Querier, id string) ([]map[string]any, error) {
	projects, err := store.QueryStrings(ctx, q, `SELECT project_id FROM compute_flavor_access WHERE flavor_id = ? ORDER BY project_id`, id)
	if err != nil {
		return nil, fmt.Errorf("flavor access %s: %w", id, err)
	}
	out := make([]map[string]any, 0, len(projects))
	for _, p := range projects {
		out = append(out, map[string]any{"flavor_id": id, "tenant_id": p})
	}
	return out, nil
}

func (s *Service) listFlavorAccess(r *http.Request) (*api.Response, error) {
	f, err := s.getFlavor(r.Context(), s.db, r.PathValue("flavor_id"))
	if err != nil {
		return nil, err
	}
	if f.IsPublic {
		return nil, api.NotFound("Access list not available for public flavors.")
	}
	list, err := s.accessList(r.Context(), s.db, f.ID)
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"flavor_access": list}), nil
}

// flavorAction serves addTenantAccess and removeTenantAccess.
func (s *Service) flavorAction(r *http.Request) (*api.Response, error) {
	var body struct {
		Add *struct {
			Tenant *string `json:"tenant"`
		} `json:"addTenantAccess"`
		Remove *struct {
			Tenant *string `json:"tenant"`
		} `json:"removeTenantAccess"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	id := r.PathValue("flavor_id")
	target := map[string]any{"project_id": s.caller(r).project}
	var list []map[string]any
	switch {
	case body.Add != nil && body.Remove == nil:
		if err := s.authorize(r, "os_compute_api:os-flavor-access:add_tenant_access", target); err != nil {
			return nil, err
		}
		if body.Add.Tenant == nil || *body.Add.Tenant == "" || len(*body.Add.Tenant) > 255 {
			return nil, api.BadRequest("Invalid input for field/attribute tenant. 'tenant' is a required property")
		}
		project := *body.Add.Tenant
		err := s.writeTx(r.Context(), func(tx *store.Tx) error {
			f, err := s.getFlavor(r.Context(), tx, id)
			if err != nil {
				return err
			}
			if f.IsPublic && at(r, 7) {
				return api.Conflict("Can not add access to a public flavor.")
			}
			var n int
			if err := tx.QueryRow(r.Context(), `SELECT COUNT(*) FROM compute_flavor_access WHERE flavor_id = ? AND project_id = ?`, id, project).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return api.Conflict("Flavor access already exists for flavor %s and project %s combination.", id, project)
			}
			if _, err := tx.Exec(r.Context(), `INSERT INTO compute_flavor_access (flavor_id, project_id) VALUES (?, ?)`, id, project); err != nil {
				return err
			}
			list, err = s.accessList(r.Context(), tx, id)
			return err
		})
		if err != nil {
			return nil, err
		}
	case body.Remove != nil && body.Add == nil:
		if err := s.authorize(r, "os_compute_api:os-flavor-access:remove_tenant_access", target); err != nil {
			return nil, err
		}
		if body.Remove.Tenant == nil || *body.Remove.Tenant == "" {
			return nil, api.BadRequest("Invalid input for field/attribute tenant. 'tenant' is a required property")
		}
		project := *body.Remove.Tenant
		err := s.writeTx(r.Context(), func(tx *store.Tx) error {
			if _, err := s.getFlavor(r.Context(), tx, id); err != nil {
				return err
			}
			res, err := tx.Exec(r.Context(), `DELETE FROM compute_flavor_access WHERE flavor_id = ? AND project_id = ?`, id, project)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return api.NotFound("Flavor access not found for %s / %s combination.", id, project)
			}
			list, err = s.accessList(r.Context(), tx, id)
			return err
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, api.BadRequest("There is no such action: %s", "flavor action")
	}
	return api.JSON(http.StatusOK, map[string]any{"flavor_access": list}), nil
}
