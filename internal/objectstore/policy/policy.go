// Package policy holds Swift's storage policies: the named classes of
// object storage (each its own object ring, replica count and data
// directories on every device) that a container is bound to when it is
// created. The proxy places a container's objects with its policy's ring,
// the object servers keep them under objects-N, and the account servers
// report usage per policy. Every proxy and storage node of a cluster must
// be given the same policies, as Swift's swift.conf is shared.
package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// LegacyName is the name policy 0 has when none is configured, and the
// one name no other policy may take, as in Swift.
const LegacyName = "Policy-0"

// Policy is one storage policy.
type Policy struct {
	// Index is the policy's number, stored with every container and
	// carried in X-Backend-Storage-Policy-Index; it never changes.
	Index int
	// Name is what clients send in X-Storage-Policy and see in /info.
	Name string
	// Aliases are further names the policy answers to, so that a policy
	// can be renamed without breaking clients that use the old name.
	Aliases []string
	// Default policies take containers created without X-Storage-Policy.
	Default bool
	// Deprecated policies keep serving their containers but take no new
	// ones, and are left out of /info.
	Deprecated bool
	// Replicas is the replica count of the object ring a one-machine
	// cloud builds for the policy (0: the builder's default).
	Replicas int
}

// Names is the policy's name followed by its aliases.
func (p Policy) Names() []string { return append([]string{p.Name}, p.Aliases...) }

// Info is the policy's entry in /info's "policies" list: name, aliases
// (all names, comma separated) and default or deprecated only when true,
// as Swift's get_info.
func (p Policy) Info() map[string]any {
	m := map[string]any{"name": p.Name, "aliases": strings.Join(p.Names(), ", ")}
	if p.Default {
		m["default"] = true
	}
	if p.Deprecated {
		m["deprecated"] = true
	}
	return m
}

// Policies is a validated set of policies; its zero value is not usable,
// use New or Legacy.
type Policies struct {
	list    []Policy       // by index
	byIndex map[int]int    // index → position in list
	byName  map[string]int // upper-case name or alias → position in list
	def     int            // position of the default policy
}

// Legacy is what a cluster without configured policies has: policy 0,
// named Policy-0, the default.
func Legacy() *Policies {
	ps, err := New([]Policy{{Index: 0, Name: LegacyName, Default: true}})
	if err != nil {
		panic(err) // a constant that always validates
	}
	return ps
}

// New validates list with Swift's rules: indexes unique and not
// negative, names and aliases unique (case-insensitive) and made of
// letters, digits and "-" (they become HTTP header names), Policy-0
// reserved for index 0, index 0 present, at least one policy not
// deprecated, and exactly one default that is not deprecated (a single
// policy is the default without saying so). An empty list is Legacy.
func New(list []Policy) (*Policies, error) {
	if len(list) == 0 {
		return Legacy(), nil
	}
	ps := &Policies{byIndex: map[int]int{}, byName: map[string]int{}, def: -1}
	ps.list = slices.Clone(list)
	slices.SortFunc(ps.list, func(a, b Policy) int { return a.Index - b.Index })
	for i, p := range ps.list {
		if p.Index < 0 {
			return nil, fmt.Errorf("storage policy %q: index %d is negative", p.Name, p.Index)
		}
		if i > 0 && ps.list[i-1].Index == p.Index {
			return nil, fmt.Errorf("storage policy index %d is given twice (%q and %q)", p.Index, ps.list[i-1].Name, p.Name)
		}
		if p.Replicas < 0 {
			return nil, fmt.Errorf("storage policy %q: replicas %d is negative", p.Name, p.Replicas)
		}
		ps.byIndex[p.Index] = i
		for _, n := range p.Names() {
			if err := validName(p.Index, n); err != nil {
				return nil, err
			}
			if j, dup := ps.byName[strings.ToUpper(n)]; dup {
				return nil, fmt.Errorf("storage policy name %q of index %d is already a name of index %d", n, p.Index, ps.list[j].Index)
			}
			ps.byName[strings.ToUpper(n)] = i
		}
		if p.Default {
			if ps.def >= 0 {
				return nil, fmt.Errorf("storage policies %q and %q are both the default", ps.list[ps.def].Name, p.Name)
			}
			if p.Deprecated {
				return nil, fmt.Errorf("storage policy %q: a deprecated policy cannot be the default", p.Name)
			}
			ps.def = i
		}
	}
	if _, ok := ps.byIndex[0]; !ok {
		return nil, errors.New("storage policies: policy index 0 is required (it holds the containers made before policies were configured)")
	}
	if !slices.ContainsFunc(ps.list, func(p Policy) bool { return !p.Deprecated }) {
		return nil, errors.New("storage policies: every policy is deprecated; at least one must take new containers")
	}
	if ps.def < 0 {
		if len(ps.list) > 1 {
			return nil, errors.New("storage policies: none is the default (set default on exactly one)")
		}
		if ps.list[0].Deprecated {
			return nil, fmt.Errorf("storage policy %q: a deprecated policy cannot be the default", ps.list[0].Name)
		}
		ps.def = 0
		ps.list[0].Default = true
	}
	return ps, nil
}

// validName applies Swift's rules for policy names.
func validName(idx int, n string) error {
	if n == "" {
		return fmt.Errorf("storage policy index %d: a name is required", idx)
	}
	for _, c := range n {
		if !(c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("storage policy name %q: only letters, digits and \"-\" are allowed (names become HTTP headers)", n)
		}
	}
	if idx != 0 && strings.EqualFold(n, LegacyName) {
		return fmt.Errorf("storage policy name %q is reserved for index 0", n)
	}
	return nil
}

// All returns the policies in index order.
func (ps *Policies) All() []Policy { return slices.Clone(ps.list) }

// Len is the number of policies.
func (ps *Policies) Len() int { return len(ps.list) }

// Default is the policy of containers created without X-Storage-Policy.
func (ps *Policies) Default() Policy { return ps.list[ps.def] }

// ByIndex returns the policy with index idx.
func (ps *Policies) ByIndex(idx int) (Policy, bool) {
	i, ok := ps.byIndex[idx]
	if !ok {
		return Policy{}, false
	}
	return ps.list[i], true
}

// ByName returns the policy with name or alias n, ignoring case as Swift
// does.
func (ps *Policies) ByName(n string) (Policy, bool) {
	i, ok := ps.byName[strings.ToUpper(strings.TrimSpace(n))]
	if !ok {
		return Policy{}, false
	}
	return ps.list[i], true
}

// ErrUnknownIndex is returned for an X-Backend-Storage-Policy-Index that
// names no policy.
var ErrUnknownIndex = errors.New("no storage policy with this index")

// FromHeader resolves an X-Backend-Storage-Policy-Index value; a missing
// one is policy 0, as in Swift's storage servers.
func (ps *Policies) FromHeader(v string) (Policy, error) {
	if v == "" {
		v = "0"
	}
	idx, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return Policy{}, fmt.Errorf("storage policy index %q: %w", v, ErrUnknownIndex)
	}
	p, ok := ps.ByIndex(idx)
	if !ok {
		return Policy{}, fmt.Errorf("storage policy index %d: %w", idx, ErrUnknownIndex)
	}
	return p, nil
}

// Info is /info's "policies": every policy that is not deprecated.
func (ps *Policies) Info() []map[string]any {
	var out []map[string]any
	for _, p := range ps.list {
		if !p.Deprecated {
			out = append(out, p.Info())
		}
	}
	return out
}

// suffix is "" for policy 0 and "-N" otherwise: Swift's naming of
// per-policy rings and directories, which keeps policy 0's paths those of
// a cluster from before policies.
func suffix(idx int) string {
	if idx == 0 {
		return ""
	}
	return "-" + strconv.Itoa(idx)
}

// RingFile is the object ring file of policy idx: object.ring.gz for 0,
// object-N.ring.gz otherwise.
func RingFile(idx int) string { return "object" + suffix(idx) + ".ring.gz" }

// BuilderFile is the ring builder file that goes with RingFile.
func BuilderFile(idx int) string { return "object" + suffix(idx) + ".builder" }

// ObjectsDir is the directory under a device holding policy idx's
// objects: objects, objects-1, ...
func ObjectsDir(idx int) string { return "objects" + suffix(idx) }

// AsyncPendingDir is the directory under a device holding policy idx's
// queued container updates: async_pending, async_pending-1, ...
func AsyncPendingDir(idx int) string { return "async_pending" + suffix(idx) }
