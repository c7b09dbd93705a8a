package policy

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
)

// DefaultRule names the rule used for actions (and "rule:" references) that
// have no rule of their own — oslo's policy_default_rule.
const DefaultRule = "default"

// Enforcer decides whether a caller may perform an action. It holds the
// service's default rules plus the overrides of the most recently loaded
// policy file; Enforce may run concurrently with LoadFile. Create one with
// NewEnforcer; the zero value denies everything.
type Enforcer struct {
	defaults map[string]string // set once by NewEnforcer, then read-only

	mu sync.RWMutex
	// active is guarded by mu. The ruleSet it points to is never modified
	// once published, so Enforce only holds mu long enough to copy the
	// pointer, and a reload never waits for evaluations in flight.
	active *ruleSet
}

// ruleSet is one consistent, immutable generation of rules.
type ruleSet struct {
	text  map[string]string // rule name -> source text
	rules map[string]Rule   // rule name -> parsed rule
}

// NewEnforcer returns an Enforcer whose rules are defaults (rule name →
// rule text), as a service registers its in-code policy defaults. Every
// rule must parse and "rule:" references must not form a cycle.
func NewEnforcer(defaults map[string]string) (*Enforcer, error) {
	set, err := compile(defaults, nil, func(name string) string {
		return fmt.Sprintf("default rule %q", name)
	})
	if err != nil {
		return nil, err
	}
	return &Enforcer{defaults: maps.Clone(defaults), active: set}, nil
}

// LoadFile replaces the current overrides with those in the policy file at
// path: a YAML (or JSON, which YAML accepts) mapping of rule name to rule
// text, as used by Keystone and Nova. File rules override defaults of the
// same name and unknown names are added; defaults the file does not mention
// are restored, so reloading an edited file behaves as a fresh start.
//
// Loading is all-or-nothing: on any error — unreadable file, bad YAML, a
// rule that does not parse, a reference cycle — the previous rules stay in
// force. Errors name the offending rule and its line.
func (e *Enforcer) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load policy file: %w", err)
	}
	if err := e.load(data); err != nil {
		return fmt.Errorf("load policy file %s: %w", path, err)
	}
	return nil
}

// LoadYAML is LoadFile for policy data that does not live in a file.
func (e *Enforcer) LoadYAML(data []byte) error {
	if err := e.load(data); err != nil {
		return fmt.Errorf("load policy: %w", err)
	}
	return nil
}

func (e *Enforcer) load(data []byte) error {
	overrides, err := decodePolicyFile(data)
	if err != nil {
		return err
	}
	texts := make(map[string]string, len(overrides))
	for _, o := range overrides {
		texts[o.name] = o.text
	}
	set, err := compile(e.defaults, texts, func(name string) string {
		for _, o := range overrides {
			if o.name == name {
				return fmt.Sprintf("rule %q (line %d)", name, o.line)
			}
		}
		return fmt.Sprintf("default rule %q", name)
	})
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.active = set
	e.mu.Unlock()
	return nil
}

// compile parses defaults overlaid with overrides into a ruleSet and checks
// it for reference cycles. describe names a rule in error messages.
func compile(defaults, overrides map[string]string, describe func(name string) string) (*ruleSet, error) {
	set := &ruleSet{
		text:  make(map[string]string, len(defaults)+len(overrides)),
		rules: make(map[string]Rule, len(defaults)+len(overrides)),
	}
	maps.Copy(set.text, defaults)
	maps.Copy(set.text, overrides)
	// Sorted, so that of several broken rules the same one is reported
	// every time.
	for _, name := range slices.Sorted(maps.Keys(set.text)) {
		r, err := Parse(set.text[name])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", describe(name), err)
		}
		set.rules[name] = r
	}
	if cycle := findCycle(set.rules); cycle != nil {
		return nil, &CycleError{Path: cycle}
	}
	return set, nil
}

// Enforce reports whether creds may perform action on target. target holds
// the attributes of the object acted on, looked up by %(key)s
// substitutions; keys may be flat ("target.user.domain_id") or nested maps.
//
// An action with no rule falls back to the rule named DefaultRule, and is
// denied if there is none. A false result with a nil error is an ordinary
// denial; an error means the policy itself is broken, and the caller should
// deny as well.
func (e *Enforcer) Enforce(action string, target map[string]any, creds Credentials) (bool, error) {
	e.mu.RLock()
	set := e.active
	e.mu.RUnlock()
	if set == nil {
		return false, nil
	}

	r, ok := resolveRef(set.rules, action)
	if !ok {
		return false, nil
	}
	ev := &evaluator{rules: set.rules, target: target, creds: &creds}
	ok, err := r.eval(ev, 0)
	if err != nil {
		return false, fmt.Errorf("enforce %s: %w", action, err)
	}
	return ok, nil
}

// Rules returns the rules in force, name → rule text as written in the
// defaults or the policy file. The map is a copy.
func (e *Enforcer) Rules() map[string]string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.active == nil {
		return map[string]string{}
	}
	return maps.Clone(e.active.text)
}

// CycleError reports "rule:" references that loop, such as a: "rule:b" with
// b: "rule:a". errors.Is(err, ErrRuleCycle) holds for it.
type CycleError struct {
	// Path lists the rules around the loop, starting and ending with the
	// same name. A reference to an undefined rule appears as DefaultRule,
	// which is what it resolves to.
	Path []string
}

// Error renders the loop as "a -> b -> a".
func (e *CycleError) Error() string {
	return fmt.Sprintf("%v: %s", ErrRuleCycle, strings.Join(e.Path, " -> "))
}

// Is makes errors.Is(err, ErrRuleCycle) true.
func (e *CycleError) Is(target error) bool { return target == ErrRuleCycle }

// findCycle returns a loop of rule references in rules, or nil. References
// resolve as at evaluation time, so an undefined name leads to DefaultRule.
// oslo only logs such loops and then recurses until Python gives up; here
// they are refused before they can be enforced.
func findCycle(rules map[string]Rule) []string {
	const (
		unvisited = iota
		onStack
		done
	)
	state := make(map[string]int, len(rules))
	var stack []string
	var visit func(name string) []string
	visit = func(name string) []string {
		state[name] = onStack
		stack = append(stack, name)
		for _, ref := range references(rules[name]) {
			next := ref
			if _, ok := rules[next]; !ok {
				if _, ok := rules[DefaultRule]; !ok {
					continue // resolves to nothing: denies, cannot loop
				}
				next = DefaultRule
			}
			switch state[next] {
			case onStack:
				i := slices.Index(stack, next)
				return append(slices.Clone(stack[i:]), next)
			case unvisited:
				if cycle := visit(next); cycle != nil {
					return cycle
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(rules)) {
		if state[name] == unvisited {
			if cycle := visit(name); cycle != nil {
				return cycle
			}
		}
	}
	return nil
}

// references lists the names r refers to with "rule:", in order.
func references(r Rule) []string {
	var names []string
	var walk func(Rule)
	walk = func(r Rule) {
		switch n := r.(type) {
		case *ruleRef:
			names = append(names, n.name)
		case *notRule:
			walk(n.operand)
		case *andRule:
			for _, op := range n.operands {
				walk(op)
			}
		case *orRule:
			for _, op := range n.operands {
				walk(op)
			}
		}
	}
	walk(r)
	return names
}
