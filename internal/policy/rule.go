package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Rule is a parsed policy rule: a tree of checks joined by "and", "or" and
// "not". Rules are immutable and safe for concurrent use.
//
// The interface is sealed: the only implementations are the ones Parse
// returns, which is what lets String promise a faithful round trip.
type Rule interface {
	// String renders the rule in canonical policy syntax. Parsing the result
	// yields a rule with the same structure, and rendering that again yields
	// the same text.
	String() string

	eval(ev *evaluator, depth int) (bool, error)
}

// ErrRuleCycle reports that "rule:" references loop back on themselves.
// Loading rejects such rule sets with a *CycleError, which matches this
// sentinel under errors.Is; Enforce returns it only if that check was
// somehow bypassed.
var ErrRuleCycle = errors.New("rule reference cycle")

// Interface guards: every node the parser produces is a Rule.
var (
	_ Rule = alwaysRule{}
	_ Rule = neverRule{}
	_ Rule = (*notRule)(nil)
	_ Rule = (*andRule)(nil)
	_ Rule = (*orRule)(nil)
	_ Rule = (*ruleRef)(nil)
	_ Rule = (*roleCheck)(nil)
	_ Rule = (*genericCheck)(nil)
)

// alwaysRule is "@" (and the empty rule).
type alwaysRule struct{}

func (alwaysRule) String() string                     { return "@" }
func (alwaysRule) eval(*evaluator, int) (bool, error) { return true, nil }

// neverRule is "!".
type neverRule struct{}

func (neverRule) String() string                     { return "!" }
func (neverRule) eval(*evaluator, int) (bool, error) { return false, nil }

// notRule is "not X".
type notRule struct {
	operand Rule
}

func (r *notRule) String() string {
	return "not " + group(r.operand, isCompound)
}

// isCompound reports whether r is an "and" or "or" group.
func isCompound(r Rule) bool {
	switch r.(type) {
	case *andRule, *orRule:
		return true
	}
	return false
}

func (r *notRule) eval(ev *evaluator, depth int) (bool, error) {
	ok, err := r.operand.eval(ev, depth)
	return !ok && err == nil, err
}

// andRule is "A and B and ...", kept as a flat list like oslo's AndCheck.
type andRule struct {
	operands []Rule
}

func (r *andRule) String() string {
	// A nested "and" only arises from explicit parentheses; keep them so the
	// structure survives a round trip.
	return join(r.operands, " and ", isCompound)
}

func (r *andRule) eval(ev *evaluator, depth int) (bool, error) {
	for _, op := range r.operands {
		ok, err := op.eval(ev, depth)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// orRule is "A or B or ...".
type orRule struct {
	operands []Rule
}

func (r *orRule) String() string {
	return join(r.operands, " or ", func(child Rule) bool {
		_, isOr := child.(*orRule)
		return isOr
	})
}

func (r *orRule) eval(ev *evaluator, depth int) (bool, error) {
	for _, op := range r.operands {
		ok, err := op.eval(ev, depth)
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

func join(rules []Rule, sep string, needParens func(Rule) bool) string {
	parts := make([]string, len(rules))
	for i, r := range rules {
		parts[i] = group(r, needParens)
	}
	return strings.Join(parts, sep)
}

func group(r Rule, needParens func(Rule) bool) string {
	if needParens(r) {
		return "(" + r.String() + ")"
	}
	return r.String()
}

// ruleRef is "rule:NAME": the result of another named rule.
type ruleRef struct {
	name string
}

func (r *ruleRef) String() string { return "rule:" + formatName(r.name) }

func (r *ruleRef) eval(ev *evaluator, depth int) (bool, error) {
	// Load-time cycle detection makes this unreachable; it stays as a
	// backstop so a bug there denies instead of overflowing the stack.
	if depth > len(ev.rules) {
		return false, fmt.Errorf("%w: rule:%s nested more than %d deep", ErrRuleCycle, r.name, len(ev.rules))
	}
	target, ok := resolveRef(ev.rules, r.name)
	if !ok {
		return false, nil // fail closed, as oslo does
	}
	return target.eval(ev, depth+1)
}

// resolveRef finds the rule a "rule:" reference (or an enforced action)
// names. Like oslo's Rules.__missing__, an undefined name falls back to the
// rule called DefaultRule when one exists.
func resolveRef(rules map[string]Rule, name string) (Rule, bool) {
	if r, ok := rules[name]; ok {
		return r, true
	}
	r, ok := rules[DefaultRule]
	return r, ok
}

// roleCheck is "role:NAME": true when the caller holds the role, compared
// case-insensitively (oslo lowercases both sides).
type roleCheck struct {
	role template
}

func (r *roleCheck) String() string { return "role:" + r.role.String() }

func (r *roleCheck) eval(ev *evaluator, _ int) (bool, error) {
	want, ok := r.role.expand(ev.target)
	if !ok {
		return false, nil
	}
	for _, have := range ev.creds.roles() {
		if strings.EqualFold(have, want) {
			return true, nil
		}
	}
	return false, nil
}

// leftKind says how to read the left-hand side of a generic check.
type leftKind int

const (
	// leftAttr names a credential attribute, possibly dotted.
	leftAttr leftKind = iota
	// leftString is a quoted literal, as in 'member':%(role.name)s.
	leftString
	// leftBool is an unquoted True or False literal.
	leftBool
)

// genericCheck is "LEFT:RIGHT". LEFT is a credential attribute or a literal;
// RIGHT is a literal or a template filled in from the target.
type genericCheck struct {
	kind  leftKind
	left  string // attribute path, or the literal's text
	right template
}

func (c *genericCheck) String() string {
	var left string
	switch c.kind {
	case leftString:
		left = quote(c.left)
	default:
		left = c.left
	}
	return left + ":" + c.right.String()
}

func (c *genericCheck) eval(ev *evaluator, _ int) (bool, error) {
	want, ok := c.right.expand(ev.target)
	if !ok {
		return false, nil // missing target key: false, not an error
	}
	switch c.kind {
	case leftString:
		return c.left == want, nil
	case leftBool:
		return strings.EqualFold(c.left, want), nil
	}
	return matchPath(ev.creds, c.left, func(v any) bool {
		have, isBool, ok := scalarString(v)
		if !ok {
			return false
		}
		if isBool {
			return strings.EqualFold(have, want)
		}
		return have == want
	}), nil
}

// template is the right-hand side of a check: literal text with optional
// %(key)s substitutions from the target. A literal-only template is always
// exactly one non-substitution part, so equal values compare equal.
type template struct {
	parts []templatePart
}

type templatePart struct {
	text string // literal text, or the target key when sub is set
	sub  bool
}

func literalTemplate(s string) template {
	return template{parts: []templatePart{{text: s}}}
}

// literal reports the template's text when it has no substitutions.
func (t template) literal() (string, bool) {
	if len(t.parts) == 1 && !t.parts[0].sub {
		return t.parts[0].text, true
	}
	return "", false
}

// expand fills in the template from target. It fails when a key is missing
// or names a value with no sensible string form (nil, a map, a list):
// oslo would compare against "None" or a Python repr, which only ever
// matches by accident.
func (t template) expand(target map[string]any) (string, bool) {
	if s, ok := t.literal(); ok {
		return s, true
	}
	var b strings.Builder
	for _, p := range t.parts {
		if !p.sub {
			b.WriteString(p.text)
			continue
		}
		v, ok := lookupValue(target, p.text)
		if !ok {
			return "", false
		}
		s, _, ok := scalarString(v)
		if !ok {
			return "", false
		}
		b.WriteString(s)
	}
	return b.String(), true
}

func (t template) String() string {
	if s, ok := t.literal(); ok {
		if isBare(s) && !strings.Contains(s, "%") {
			return s
		}
		if canQuote(s) {
			return quote(s)
		}
		// Both quote characters: only an unquoted source yields this, and
		// that source was bare, so escaping '%' is enough.
		return strings.ReplaceAll(s, "%", "%%")
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.sub {
			b.WriteString("%(" + p.text + ")s")
		} else {
			b.WriteString(strings.ReplaceAll(p.text, "%", "%%"))
		}
	}
	return b.String()
}

// formatName renders a rule name after "rule:".
func formatName(s string) string {
	if isBare(s) || !canQuote(s) {
		return s
	}
	return quote(s)
}

// isBare reports whether s lexes back as itself when written unquoted after
// a ':' — it is one word, is not taken for a quoted string, and loses no
// trailing ')' to the parenthesis stripper.
func isBare(s string) bool {
	if s == "" || isQuote(s[0]) || strings.HasSuffix(s, ")") {
		return false
	}
	return !strings.ContainsFunc(s, isSpace)
}

func isQuote(c byte) bool { return c == '\'' || c == '"' }

func canQuote(s string) bool {
	return !strings.Contains(s, "'") || !strings.Contains(s, `"`)
}

// quote wraps s in whichever quote character it does not contain. The
// language has no escapes, so a string holding both cannot be quoted.
func quote(s string) string {
	if !strings.Contains(s, "'") {
		return "'" + s + "'"
	}
	return `"` + s + `"`
}
