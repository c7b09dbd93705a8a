package policy

import (
	"errors"
	"testing"
)

// FuzzParse checks Parse never panics, fails only with a well-formed
// *SyntaxError, and that String() round-trips: the rendering parses back to
// the same tree and renders identically. Evaluating the result must not
// panic either. Plain `go test` runs only the seeds below.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"@",
		"!",
		"   ",
		"role:admin",
		"rule:admin_required",
		"rule:identity:get_user",
		"project_id:%(project_id)s",
		"is_admin:True",
		"'member':%(role.name)s",
		`"a b":'c d'`,
		"True:%(user.enabled)s",
		"name:'foo (bar)'",
		"name:100%%",
		"id:p-%(a)s-%(b.c)s%%",
		keystoneGetUser,
		"role:admin or project_id:%(project_id)s",
		"not role:foo and (rule:a or @)",
		"not not (@ or !) and ((role:a and role:b) and role:c)",
		"(@ or !) or @",
		"((role:a)",
		"role:a)",
		"role:a and",
		":x",
		"role:",
		"http://x",
		"name:'abc",
		"name:%(x",
		"a:b)c",
		"a(b:c(",
		"\x1cand\u00a0role:x",
		"role:\xff\xfe",
	} {
		f.Add(seed)
	}
	creds := Credentials{
		UserID: "u", ProjectID: "p", SystemScope: "all", IsAdmin: true,
		Roles: []string{"admin", "reader"},
		Attrs: map[string]any{"a": []any{"b", map[string]any{"c": "d"}}, "x": nil},
	}
	target := map[string]any{"project_id": "p", "a.b": "c", "target": map[string]any{"user": map[string]any{"id": "u"}}}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := Parse(in)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error %v is %T", in, err, err)
			}
			if se.Offset < 0 || se.Offset > len(in) || se.Rule != in || se.Msg == "" {
				t.Fatalf("Parse(%q) returned malformed %#v", in, se)
			}
			_ = se.Error()
			return
		}
		assertRoundTrip(t, in)
		ev := &evaluator{rules: map[string]Rule{DefaultRule: alwaysRule{}}, target: target, creds: &creds}
		if _, err := r.eval(ev, 0); err != nil {
			t.Fatalf("eval(%q): %v", in, err)
		}
	})
}
