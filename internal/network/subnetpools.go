package network

import (
	"context"
	"database/sql"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

type subnetPool struct {
	ID, ProjectID, Name, Description string
	IPVersion                        int
	Prefixes                         []string
	DefaultPrefixlen, MinPrefixlen   int
	MaxPrefixlen                     int
	Shared, IsDefault                bool
	DefaultQuota                     *int
	AddressScopeID                   *string
	Revision                         int
	CreatedAt, UpdatedAt             string
}

const subnetPoolColumns = `id, project_id, name, description, ip_version, prefixes, default_prefixlen, min_prefixlen, max_prefixlen,
	shared, is_default, default_quota, address_scope_id, revision_number, created_at, updated_at`

func scanSubnetPool(row store.Scanner) (*subnetPool, error) {
	var sp subnetPool
	var prefixes string
	var shared, def int
	var quota sql.NullInt64
	var scope sql.NullString
	if err := row.Scan(&sp.ID, &sp.ProjectID, &sp.Name, &sp.Description, &sp.IPVersion, &prefixes, &sp.DefaultPrefixlen, &sp.MinPrefixlen,
		&sp.MaxPrefixlen, &shared, &def, &quota, &scope, &sp.Revision, &sp.CreatedAt, &sp.UpdatedAt); err != nil {
		return nil, err
	}
	sp.Shared, sp.IsDefault = shared != 0, def != 0
	sp.DefaultQuota, sp.AddressScopeID = nullInt(quota), nullString(scope)
	return &sp, fromJSON(prefixes, &sp.Prefixes)
}

func (c caller) seesPool(sp *subnetPool) bool {
	return c.admin || sp.ProjectID == c.project || sp.Shared
}

func (s *Service) loadSubnetPool(ctx context.Context, q store.Querier, c caller, id string) (*subnetPool, error) {
	return loadVisible(ctx, q, scanSubnetPool, `SELECT `+subnetPoolColumns+` FROM subnetpools WHERE id = ?`, id, c.seesPool, subnetPoolNotFound)
}

func renderSubnetPool(sp *subnetPool, tags []string) obj {
	o := obj{
		"name": sp.Name, "ip_version": sp.IPVersion, "prefixes": orEmpty(sp.Prefixes),
		"default_prefixlen": sp.DefaultPrefixlen, "min_prefixlen": sp.MinPrefixlen, "max_prefixlen": sp.MaxPrefixlen,
		"shared": sp.Shared, "is_default": sp.IsDefault, "default_quota": intOrNil(sp.DefaultQuota),
		"address_scope_id": strOrNil(sp.AddressScopeID),
	}
	return standardAttrs(o, sp.ID, sp.ProjectID, sp.Description, sp.Revision, sp.CreatedAt, sp.UpdatedAt, tags)
}

func (s *Service) subnetPoolObj(ctx context.Context, q store.Querier, sp *subnetPool) (obj, error) {
	return withTags(ctx, q, sp.ID, sp, renderSubnetPool)
}

func (s *Service) listSubnetPools(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	pools, err := queryList(s, r, c, "get_subnetpool", scanSubnetPool, `SELECT `+subnetPoolColumns+` FROM subnetpools`, `(project_id = ? OR shared = 1)`, nil)
	if err != nil {
		return nil, err
	}
	items, err := renderTagged(ctx, s.db, pools, func(sp *subnetPool) string { return sp.ID }, c.seesPool, renderSubnetPool)
	if err != nil {
		return nil, err
	}
	return s.list(r, "subnetpools", items, nil)
}

func (s *Service) showSubnetPool(r *http.Request) (*api.Response, error) {
	return showOne(s, r, "subnetpool", s.loadSubnetPool, s.subnetPoolObj)
}

type subnetPoolBody struct {
	Name             *string              `json:"name"`
	Description      *string              `json:"description"`
	Prefixes         []string             `json:"prefixes"`
	DefaultPrefixlen *int                 `json:"default_prefixlen"`
	MinPrefixlen     *int                 `json:"min_prefixlen"`
	MaxPrefixlen     *int                 `json:"max_prefixlen"`
	Shared           *bool                `json:"shared"`
	IsDefault        *bool                `json:"is_default"`
	DefaultQuota     api.Optional[int]    `json:"default_quota"`
	AddressScopeID   api.Optional[string] `json:"address_scope_id"`
	ProjectID        *string              `json:"project_id"`
	TenantID         *string              `json:"tenant_id"`
	Tags             []string             `json:"tags"`
}

// normalizePrefixes parses a pool's prefixes, drops host bits and
// prefixes inside others, and checks they are of one IP version.
func normalizePrefixes(in []string) ([]netip.Prefix, int, error) {
	if len(in) == 0 {
		return nil, 0, nerr(400, "EmptySubnetPoolPrefixList", "Empty subnet pool prefix list.")
	}
	var ps []netip.Prefix
	version := 0
	for _, s := range in {
		p, err := parseCIDR(s)
		if err != nil {
			return nil, 0, attrInvalid("prefixes", "%s", err.Error())
		}
		v := ipVersion(p.Addr())
		if version != 0 && v != version {
			return nil, 0, nerr(400, "PrefixVersionMismatch", "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
		}
		version = v
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Bits() != ps[j].Bits() {
			return ps[i].Bits() < ps[j].Bits()
		}
		return ps[i].Addr().Less(ps[j].Addr())
	})
	var out []netip.Prefix
	for _, p := range ps {
		if !slices.ContainsFunc(out, func(o netip.Prefix) bool { return o.Overlaps(p) }) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	return out, version, nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// checkPrefixlens validates a pool's prefix length bounds against its
// version and prefixes.
func checkPrefixlens(sp *subnetPool, ps []netip.Prefix) error {
	maxBits := 32
	if sp.IPVersion == 6 {
		maxBits = 128
	}
	if sp.MaxPrefixlen > maxBits || sp.MinPrefixlen < 0 {
		return nerr(400, "UnsupportedMinSubnetPoolPrefix", "Prefix '%d' not supported in IPv%d pool.", sp.MaxPrefixlen, sp.IPVersion)
	}
	if sp.MinPrefixlen > sp.MaxPrefixlen {
		return nerr(400, "IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: min_prefixlen=%d, max_prefixlen=%d.", sp.MinPrefixlen, sp.MaxPrefixlen)
	}
	if sp.DefaultPrefixlen < sp.MinPrefixlen || sp.DefaultPrefixlen > sp.MaxPrefixlen {
		return nerr(400, "IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: default_prefixlen=%d, min_prefixlen=%d.", sp.DefaultPrefixlen, sp.MinPrefixlen)
	}
	for _, p := range ps {
		if p.Bits() > sp.MaxPrefixlen {
			return nerr(400, "IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: prefixlen=%d, max_prefixlen=%d.", p.Bits(), sp.MaxPrefixlen)
		}
	}
	return nil
}

func (s *Service) createSubnetPool(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[subnetPoolBody](r, "subnetpool")
	if err != nil {
		return nil, err
	}
	c := s.caller(r)
	var attrs []string
	if b.Shared != nil && *b.Shared {
		attrs = append(attrs, "shared")
	}
	if b.IsDefault != nil && *b.IsDefault {
		attrs = append(attrs, "is_default")
	}
	project, err := s.authorizeCreate(r, c, "create_subnetpool", b.ProjectID, b.TenantID, attrs...)
	if err != nil {
		return nil, err
	}
	if b.AddressScopeID.Set && !b.AddressScopeID.Null {
		return nil, invalidInput("Address scopes are not supported")
	}
	if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 255), validTags(b.Tags)); err != nil {
		return nil, err
	}
	ps, version, err := normalizePrefixes(b.Prefixes)
	if err != nil {
		return nil, err
	}
	t := neutronTime(now())
	sp := &subnetPool{ID: newID(), ProjectID: project, Name: deref(b.Name), Description: deref(b.Description), IPVersion: version,
		Prefixes: prefixStrings(ps), Shared: derefOr(b.Shared, false), IsDefault: derefOr(b.IsDefault, false), CreatedAt: t, UpdatedAt: t}
	sp.MinPrefixlen, sp.MaxPrefixlen = 8, 32
	if version == 6 {
		sp.MinPrefixlen, sp.MaxPrefixlen = 64, 128
	}
	if b.MinPrefixlen != nil {
		sp.MinPrefixlen = *b.MinPrefixlen
	}
	if b.MaxPrefixlen != nil {
		sp.MaxPrefixlen = *b.MaxPrefixlen
	}
	sp.DefaultPrefixlen = derefOr(b.DefaultPrefixlen, sp.MinPrefixlen)
	if err := checkPrefixlens(sp, ps); err != nil {
		return nil, err
	}
	if b.DefaultQuota.Set && !b.DefaultQuota.Null {
		q := b.DefaultQuota.Value
		sp.DefaultQuota = &q
	}
	var o obj
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		ctx := r.Context()
		if err := s.checkQuota(ctx, tx, project, "subnetpool", 1); err != nil {
			return err
		}
		if sp.IsDefault {
			if err := checkOneDefaultPool(ctx, tx, sp); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO subnetpools (`+subnetPoolColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sp.ID, sp.ProjectID, sp.Name, sp.Description, sp.IPVersion, jsonText(sp.Prefixes), sp.DefaultPrefixlen, sp.MinPrefixlen,
			sp.MaxPrefixlen, boolInt(sp.Shared), boolInt(sp.IsDefault), sp.DefaultQuota, sp.AddressScopeID, sp.Revision, sp.CreatedAt, sp.UpdatedAt); err != nil {
			return err
		}
		if err := setTags(ctx, tx, sp.ID, b.Tags); err != nil {
			return err
		}
		var err error
		o, err = s.subnetPoolObj(ctx, tx, sp)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusCreated, obj{"subnetpool": o}), nil
}

func checkOneDefaultPool(ctx context.Context, tx *store.Tx, sp *subnetPool) error {
	n, err := count(ctx, tx, `SELECT COUNT(*) FROM subnetpools WHERE is_default = 1 AND ip_version = ? AND id <> ?`, sp.IPVersion, sp.ID)
	if err != nil {
		return err
	}
	if n > 0 {
		return invalidInput("A default subnetpool for this IP family has already been set. Only one default may exist per IP family")
	}
	return nil
}

func (s *Service) updateSubnetPool(r *http.Request) (*api.Response, error) {
	b, err := decodeBody[subnetPoolBody](r, "subnetpool")
	if err != nil {
		return nil, err
	}
	if b.ProjectID != nil || b.TenantID != nil || b.Shared != nil || b.Tags != nil {
		return nil, badRequest("subnetpool", "Cannot update read-only attribute")
	}
	if err := firstErr(checkLen("name", b.Name, 255), checkLen("description", b.Description, 255)); err != nil {
		return nil, err
	}
	c := s.caller(r)
	var o obj
	err = s.writeTx(r.Context(), func(tx *store.Tx) error {
		ctx := r.Context()
		sp, err := s.loadSubnetPool(ctx, tx, c, r.PathValue("id"))
		if err != nil {
			return err
		}
		target := obj{"project_id": sp.ProjectID}
		if err := s.authorize(r, "update_subnetpool", target); err != nil {
			return err
		}
		if b.IsDefault != nil {
			if err := s.authorizeAttrs(r, "update_subnetpool", target, "is_default"); err != nil {
				return err
			}
			sp.IsDefault = *b.IsDefault
			if sp.IsDefault {
				if err := checkOneDefaultPool(ctx, tx, sp); err != nil {
					return err
				}
			}
		}
		if b.Name != nil {
			sp.Name = *b.Name
		}
		if b.Description != nil {
			sp.Description = *b.Description
		}
		ps, _, err := normalizePrefixes(sp.Prefixes)
		if err != nil {
			return err
		}
		if b.Prefixes != nil {
			next, version, err := normalizePrefixes(b.Prefixes)
			if err != nil {
				return err
			}
			if version != sp.IPVersion {
				return nerr(400, "PrefixVersionMismatch", "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
			}
			for _, old := range ps {
				if !slices.ContainsFunc(next, func(p netip.Prefix) bool { return p.Bits() <= old.Bits() && p.Contains(old.Addr()) }) {
					return nerr(400, "IllegalSubnetPoolPrefixUpdate", "Illegal update to prefixes: %s.", "an existing prefix must be a subset of the new prefixes")
				}
			}
			ps = next
			sp.Prefixes = prefixStrings(next)
		}
		if b.MinPrefixlen != nil {
			sp.MinPrefixlen = *b.MinPrefixlen
		}
		if b.MaxPrefixlen != nil {
			sp.MaxPrefixlen = *b.MaxPrefixlen
		}
		if b.DefaultPrefixlen != nil {
			sp.DefaultPrefixlen = *b.DefaultPrefixlen
		}
		if err := checkPrefixlens(sp, ps); err != nil {
			return err
		}
		if b.DefaultQuota.Set {
			sp.DefaultQuota = nil
			if !b.DefaultQuota.Null {
				q := b.DefaultQuota.Value
				sp.DefaultQuota = &q
			}
		}
		touch(&sp.Revision, &sp.UpdatedAt)
		if _, err := tx.Exec(ctx, `UPDATE subnetpools SET name = ?, description = ?, prefixes = ?, default_prefixlen = ?, min_prefixlen = ?,
			max_prefixlen = ?, is_default = ?, default_quota = ?, revision_number = ?, updated_at = ? WHERE id = ?`,
			sp.Name, sp.Description, jsonText(sp.Prefixes), sp.DefaultPrefixlen, sp.MinPrefixlen, sp.MaxPrefixlen, boolInt(sp.IsDefault),
			sp.DefaultQuota, sp.Revision, sp.UpdatedAt, sp.ID); err != nil {
			return err
		}
		o, err = s.subnetPoolObj(ctx, tx, sp)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, obj{"subnetpool": o}), nil
}

func (s *Service) deleteSubnetPool(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	err := s.writeTx(r.Context(), func(tx *store.Tx) error {
		ctx := r.Context()
		sp, err := s.loadSubnetPool(ctx, tx, c, r.PathValue("id"))
		if err != nil {
			return err
		}
		if err := s.authorize(r, "delete_subnetpool", obj{"project_id": sp.ProjectID}); err != nil {
			return err
		}
		n, err := count(ctx, tx, `SELECT COUNT(*) FROM subnets WHERE subnetpool_id = ?`, sp.ID)
		if err != nil {
			return err
		}
		if n > 0 {
			return inUse("SubnetPoolInUse", "Unable to complete operation on subnet pool %s. Subnet pool has existing allocations.", sp.ID)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tags WHERE resource_id = ?`, sp.ID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM subnetpools WHERE id = ?`, sp.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

// poolSubnets returns the prefixes already allocated from a pool.
func poolSubnets(ctx context.Context, tx *store.Tx, poolID string) ([]netip.Prefix, error) {
	cidrs, err := store.QueryStrings(ctx, tx, `SELECT cidr FROM subnets WHERE subnetpool_id = ?`, poolID)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

func checkPrefixlenBounds(sp *subnetPool, l int) error {
	if l < sp.MinPrefixlen {
		return nerr(400, "MinPrefixSubnetAllocationError", "Unable to allocate subnet with prefix length %d, minimum allowed prefix is %d.", l, sp.MinPrefixlen)
	}
	if l > sp.MaxPrefixlen {
		return nerr(400, "MaxPrefixSubnetAllocationError", "Unable to allocate subnet with prefix length %d, maximum allowed prefix is %d.", l, sp.MaxPrefixlen)
	}
	return nil
}

func subnetAllocationError(reason string) *api.Error {
	return nerr(http.StatusBadRequest, "SubnetAllocationError", "Failed to allocate subnet: %s.", reason)
}

// claimFromPool checks that a specific prefix may come from the pool.
func (s *Service) claimFromPool(ctx context.Context, tx *store.Tx, sp *subnetPool, p netip.Prefix) error {
	if err := checkPrefixlenBounds(sp, p.Bits()); err != nil {
		return err
	}
	inside := false
	for _, ps := range sp.Prefixes {
		pool, err := netip.ParsePrefix(ps)
		if err == nil && pool.Bits() <= p.Bits() && pool.Contains(p.Addr()) {
			inside = true
		}
	}
	if !inside {
		return subnetAllocationError("Cannot allocate requested subnet from the available set of prefixes")
	}
	used, err := poolSubnets(ctx, tx, sp.ID)
	if err != nil {
		return err
	}
	for _, u := range used {
		if u.Overlaps(p) {
			return subnetAllocationError("Cannot allocate requested subnet from the available set of prefixes")
		}
	}
	return nil
}

// allocateFromPool finds the first free prefix of the asked length in
// the pool's prefixes.
func (s *Service) allocateFromPool(ctx context.Context, tx *store.Tx, sp *subnetPool, prefixlen *int) (netip.Prefix, error) {
	l := derefOr(prefixlen, sp.DefaultPrefixlen)
	if err := checkPrefixlenBounds(sp, l); err != nil {
		return netip.Prefix{}, err
	}
	used, err := poolSubnets(ctx, tx, sp.ID)
	if err != nil {
		return netip.Prefix{}, err
	}
	const maxCandidates = 1 << 20
	tried := 0
	for _, ps := range sp.Prefixes {
		pool, err := netip.ParsePrefix(ps)
		if err != nil || pool.Bits() > l {
			continue
		}
		cand := netip.PrefixFrom(pool.Addr(), l)
		for pool.Contains(cand.Addr()) && tried < maxCandidates {
			tried++
			clash := slices.ContainsFunc(used, func(u netip.Prefix) bool { return u.Overlaps(cand) })
			if !clash {
				return cand, nil
			}
			next := lastAddr(cand).Next()
			if !next.IsValid() {
				break
			}
			cand = netip.PrefixFrom(next, l)
		}
	}
	return netip.Prefix{}, subnetAllocationError("Insufficient prefix space to allocate subnet size /" + strconv.Itoa(l))
}
