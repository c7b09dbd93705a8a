package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// osloString renders r the way oslo.policy's Check.__str__ does — every
// "and"/"or" group in parentheses — so tree shapes can be compared with
// what oslo's own parser builds.
func osloString(r Rule) string {
	switch n := r.(type) {
	case *notRule:
		return "not " + osloString(n.operand)
	case *andRule:
		return "(" + joinOslo(n.operands, " and ") + ")"
	case *orRule:
		return "(" + joinOslo(n.operands, " or ") + ")"
	}
	return r.String()
}

func joinOslo(rules []Rule, sep string) string {
	parts := make([]string, len(rules))
	for i, r := range rules {
		parts[i] = osloString(r)
	}
	return strings.Join(parts, sep)
}

func mustParse(t testing.TB, s string) Rule {
	t.Helper()
	r, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return r
}

// TestParsePrecedence pins the tree shapes oslo.policy's shift-reduce parser
// produces (its test_parser.py expectations), including "not" binding
// tightest and parentheses that merely restate precedence.
func TestParsePrecedence(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"@ or ! or @", "(@ or ! or @)"},
		{"@ or ! and @", "(@ or (! and @))"},
		{"@ and ! or @", "((@ and !) or @)"},
		{"@ and ! and @", "(@ and ! and @)"},
		{"@ or ! or @ and !", "(@ or ! or (@ and !))"},
		{"@ or ! and @ or !", "(@ or (! and @) or !)"},
		{"@ or ! and @ and !", "(@ or (! and @ and !))"},
		{"@ and ! or @ or !", "((@ and !) or @ or !)"},
		{"@ and ! or @ and !", "((@ and !) or (@ and !))"},
		{"@ and ! and @ or !", "((@ and ! and @) or !)"},
		{"not @ and ! or @", "((not @ and !) or @)"},
		{"@ and not ! or @", "((@ and not !) or @)"},
		{"@ and ! or not @", "((@ and !) or not @)"},
		{"( @ ) and ! or ( @ )", "((@ and !) or @)"},
		{"( ( @ ) and ! ) or @", "((@ and !) or @)"},
		{"((@ and !)) or @", "((@ and !) or @)"},
		{"not (@ or !)", "not (@ or !)"},
		{"not not @", "not not @"},
		{"not not @ and !", "(not not @ and !)"},
		{"(@ or !) and @", "((@ or !) and @)"},
		{"(@ or !) or @", "((@ or !) or @)"},
		{"@ AND ! Or NOT @", "((@ and !) or not @)"},
		{"not role:foo and (rule:a or @)", "(not role:foo and (rule:a or @))"},
	}
	for _, tt := range tests {
		if got := osloString(mustParse(t, tt.in)); got != tt.want {
			t.Errorf("Parse(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestParseChecks covers every check form: the node built and its
// canonical rendering.
func TestParseChecks(t *testing.T) {
	lit := literalTemplate
	tests := []struct {
		in     string
		want   Rule
		canon  string // canonical String(); defaults to in
		reason string
	}{
		{in: "", want: alwaysRule{}, canon: "@", reason: "empty rule allows"},
		{in: "@", want: alwaysRule{}},
		{in: "!", want: neverRule{}},
		{in: "role:admin", want: &roleCheck{role: lit("admin")}},
		{in: "role:compute:admin", want: &roleCheck{role: lit("compute:admin")}, reason: "split at the first ':'"},
		{in: "role:%(role_name)s", want: &roleCheck{role: template{parts: []templatePart{{text: "role_name", sub: true}}}}},
		{in: "role:'Member'", want: &roleCheck{role: lit("Member")}, canon: "role:Member"},
		{in: "rule:admin_required", want: &ruleRef{name: "admin_required"}},
		{in: "rule:identity:get_user", want: &ruleRef{name: "identity:get_user"}},
		{in: `rule:"odd name"`, want: &ruleRef{name: "odd name"}, canon: "rule:'odd name'"},
		{in: "rule:%(x)s", want: &ruleRef{name: "%(x)s"}, reason: "rule names are not templates"},
		{in: "project_id:%(project_id)s", want: &genericCheck{left: "project_id", right: template{parts: []templatePart{{text: "project_id", sub: true}}}}},
		{in: "domain_id:%(target.user.domain_id)s", want: &genericCheck{left: "domain_id", right: template{parts: []templatePart{{text: "target.user.domain_id", sub: true}}}}},
		{in: "system_scope:all", want: &genericCheck{left: "system_scope", right: lit("all")}},
		{in: "is_admin:True", want: &genericCheck{left: "is_admin", right: lit("True")}},
		{in: "name:'foo bar'", want: &genericCheck{left: "name", right: lit("foo bar")}},
		{in: `name:"it's"`, want: &genericCheck{left: "name", right: lit("it's")}, canon: "name:it's"},
		{in: "name:'(x)'", want: &genericCheck{left: "name", right: lit("(x)")}},
		{in: "name:''", want: &genericCheck{left: "name", right: lit("")}},
		{in: "name:'%(x)s'", want: &genericCheck{left: "name", right: lit("%(x)s")}, reason: "quoted values are literal"},
		{in: "name:100%%", want: &genericCheck{left: "name", right: lit("100%")}, canon: "name:'100%'"},
		{in: "name:o'brien", want: &genericCheck{left: "name", right: lit("o'brien")}},
		{in: "id:p-%(a)s-%(b.c)s%%", want: &genericCheck{left: "id", right: template{parts: []templatePart{
			{text: "p-"}, {text: "a", sub: true}, {text: "-"}, {text: "b.c", sub: true}, {text: "%"},
		}}}},
		{in: "token.user.id:%(user_id)s", want: &genericCheck{left: "token.user.id", right: template{parts: []templatePart{{text: "user_id", sub: true}}}}},
		{in: "'member':%(role.name)s", want: &genericCheck{kind: leftString, left: "member", right: template{parts: []templatePart{{text: "role.name", sub: true}}}}},
		{in: `"a:b c":x`, want: &genericCheck{kind: leftString, left: "a:b c", right: lit("x")}, canon: "'a:b c':x"},
		{in: "True:%(user.enabled)s", want: &genericCheck{kind: leftBool, left: "True", right: template{parts: []templatePart{{text: "user.enabled", sub: true}}}}},
		{in: "False:%(enabled)s", want: &genericCheck{kind: leftBool, left: "False", right: template{parts: []templatePart{{text: "enabled", sub: true}}}}},
		{in: "true:x", want: &genericCheck{left: "true", right: lit("x")}, reason: "only True/False are literals, as in Python"},
		{in: "and:x", want: &genericCheck{left: "and", right: lit("x")}, reason: "keywords only stand alone"},
		{in: "(role:a)", want: &roleCheck{role: lit("a")}, canon: "role:a"},
		{in: "((role:a))", want: &roleCheck{role: lit("a")}, canon: "role:a"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %#v, want %#v (%s)", tt.in, got, tt.want, tt.reason)
		}
		canon := tt.canon
		if canon == "" {
			canon = tt.in
		}
		if s := got.String(); s != canon {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, s, canon)
		}
	}
}

// TestParseKeystoneRules parses rules in the shape Keystone and Nova ship
// and checks both the tree and the canonical text.
func TestParseKeystoneRules(t *testing.T) {
	tests := []struct {
		in, oslo, canon string
	}{
		{
			in:    "(role:reader and system_scope:all) or (role:reader and domain_id:%(target.user.domain_id)s) or user_id:%(target.user.id)s",
			oslo:  "((role:reader and system_scope:all) or (role:reader and domain_id:%(target.user.domain_id)s) or user_id:%(target.user.id)s)",
			canon: "role:reader and system_scope:all or role:reader and domain_id:%(target.user.domain_id)s or user_id:%(target.user.id)s",
		},
		{
			in:    "role:admin or project_id:%(project_id)s",
			oslo:  "(role:admin or project_id:%(project_id)s)",
			canon: "role:admin or project_id:%(project_id)s",
		},
		{
			in:    "not role:foo and (rule:a or @)",
			oslo:  "(not role:foo and (rule:a or @))",
			canon: "not role:foo and (rule:a or @)",
		},
		{
			in:    "is_admin:True or (role:admin and is_admin_project:True) or project_id:%(project_id)s",
			oslo:  "(is_admin:True or (role:admin and is_admin_project:True) or project_id:%(project_id)s)",
			canon: "is_admin:True or role:admin and is_admin_project:True or project_id:%(project_id)s",
		},
		{
			in:    "  role:admin\tand\n(project_id:%(project_id)s)  ",
			oslo:  "(role:admin and project_id:%(project_id)s)",
			canon: "role:admin and project_id:%(project_id)s",
		},
	}
	for _, tt := range tests {
		r := mustParse(t, tt.in)
		if got := osloString(r); got != tt.oslo {
			t.Errorf("Parse(%q) tree = %s, want %s", tt.in, got, tt.oslo)
		}
		if got := r.String(); got != tt.canon {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.canon)
		}
		assertRoundTrip(t, tt.in)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in      string
		column  int
		message string
	}{
		{"(role:a", 1, `unbalanced "("`},
		{"(role:a or (role:b)", 1, `unbalanced "("`},
		{"role:a)", 7, `unbalanced ")"`},
		{")", 1, `unexpected ")"`},
		{"()", 1, "empty parentheses"},
		{"role:a and", 8, `dangling "and"`},
		{"role:a or", 8, `dangling "or"`},
		{"role:a AND", 8, `dangling "and"`},
		{"not", 1, `dangling "not"`},
		{"role:a and or role:b", 8, `dangling "and"`},
		{"(role:a and) or @", 9, `dangling "and"`},
		{"and role:a", 1, `unexpected "and"`},
		{"role:a role:b", 8, "must be joined"},
		{"(role:a) (role:b)", 10, "must be joined"},
		{":admin", 1, "empty check name"},
		{"@ or :x", 6, "empty check name"},
		{"role:", 6, "empty value"},
		{"role:)", 6, "empty value"},
		{"role", 1, `has no ':'`},
		{"admin_required", 1, `has no ':'`},
		{"@@", 1, `has no ':'`},
		{"'member'", 1, "is not a check"},
		{"'member' or @", 1, "is not a check"},
		{"name:'abc", 6, "unterminated quoted string"},
		{"'abc", 1, "unterminated quoted string"},
		{"name:'a'b", 9, "after closing quote"},
		{"name:50%", 8, `stray "%"`},
		{"name:%(x", 6, "unterminated %(key)s"},
		{"name:%()s", 6, "empty key"},
		{"name:%(x)d", 6, `must end in ")s"`},
		{"rule:", 6, "empty value"},
		{"http://example.com/check", 1, `remote "http" checks are not supported`},
		{"role:a or https://example.com", 11, `remote "https"`},
		{"   ", 1, "blank rule"},
		{"é and", 1, `has no ':'`},
		{"role:é and", 8, `dangling "and"`}, // columns count characters, not bytes
		{strings.Repeat("(", maxNesting+1) + "@" + strings.Repeat(")", maxNesting+1), maxNesting + 1, "nests deeper"},
		{strings.Repeat("not ", maxNesting+1) + "@", 4*maxNesting + 1, "nests deeper"},
	}
	for _, tt := range tests {
		r, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %s, want error", tt.in, r)
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) error %v is %T, want *SyntaxError", tt.in, err, err)
			continue
		}
		if se.Column() != tt.column || !strings.Contains(se.Msg, tt.message) {
			t.Errorf("Parse(%q) = %v (column %d), want column %d and %q", tt.in, err, se.Column(), tt.column, tt.message)
		}
		if se.Rule != tt.in {
			t.Errorf("Parse(%q) error carries rule %q", tt.in, se.Rule)
		}
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	_, err := Parse("role:a and")
	want := `syntax error at column 8 of "role:a and": dangling "and": expected a check after it, found end of rule`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

// TestNestingLimit checks the limit is generous enough for real rules.
func TestNestingLimit(t *testing.T) {
	in := strings.Repeat("(", maxNesting) + "@" + strings.Repeat(")", maxNesting)
	if _, err := Parse(in); err != nil {
		t.Errorf("Parse at the nesting limit: %v", err)
	}
	in = strings.Repeat("not ", maxNesting) + "@"
	if _, err := Parse(in); err != nil {
		t.Errorf("Parse at the not-nesting limit: %v", err)
	}
}

// assertRoundTrip checks String() output parses to the same tree and
// renders identically.
func assertRoundTrip(t testing.TB, in string) {
	t.Helper()
	r, err := Parse(in)
	if err != nil {
		return
	}
	out := r.String()
	r2, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(%q).String() = %q, which does not parse: %v", in, out, err)
	}
	if !reflect.DeepEqual(r, r2) {
		t.Fatalf("round trip changed the tree:\n in  %q\n out %q\n tree %s\n then %s", in, out, osloString(r), osloString(r2))
	}
	if out2 := r2.String(); out2 != out {
		t.Fatalf("round trip unstable: %q -> %q -> %q", in, out, out2)
	}
}
