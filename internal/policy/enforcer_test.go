package policy

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var testDefaults = map[string]string{
	"admin_required":        "role:admin",
	"admin_or_owner":        "rule:admin_required or project_id:%(project_id)s",
	"compute:servers:show":  "rule:admin_or_owner",
	"compute:servers:reset": "rule:admin_required",
}

func writePolicy(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func enforce(t *testing.T, e *Enforcer, action string, target map[string]any, creds Credentials) bool {
	t.Helper()
	ok, err := e.Enforce(action, target, creds)
	if err != nil {
		t.Fatalf("Enforce(%s): %v", action, err)
	}
	return ok
}

func TestEnforcerDefaults(t *testing.T) {
	e, err := NewEnforcer(testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	owner := Credentials{UserID: "u1", ProjectID: "p1", Roles: []string{"member"}}
	target := map[string]any{"project_id": "p1"}
	if !enforce(t, e, "compute:servers:show", target, owner) {
		t.Error("owner denied show")
	}
	if enforce(t, e, "compute:servers:reset", target, owner) {
		t.Error("owner allowed reset")
	}
	if !enforce(t, e, "compute:servers:reset", target, Credentials{Roles: []string{"admin"}}) {
		t.Error("admin denied reset")
	}
	if enforce(t, e, "compute:servers:delete", target, Credentials{Roles: []string{"admin"}}) {
		t.Error("unknown action allowed without a default rule")
	}
	if got := e.Rules(); !maps.Equal(got, testDefaults) {
		t.Errorf("Rules() = %v, want %v", got, testDefaults)
	}
	// Rules returns a copy.
	e.Rules()["admin_required"] = "@"
	if enforce(t, e, "compute:servers:reset", target, owner) {
		t.Error("mutating Rules() changed the enforcer")
	}
}

func TestEnforcerUnknownActionUsesDefault(t *testing.T) {
	e, err := NewEnforcer(map[string]string{"default": "role:admin"})
	if err != nil {
		t.Fatal(err)
	}
	if !enforce(t, e, "anything", nil, Credentials{Roles: []string{"admin"}}) {
		t.Error("admin denied by default rule")
	}
	if enforce(t, e, "anything", nil, Credentials{Roles: []string{"member"}}) {
		t.Error("member allowed by default rule")
	}
}

func TestEnforcerNilDefaults(t *testing.T) {
	e, err := NewEnforcer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if enforce(t, e, "x", nil, Credentials{}) {
		t.Error("empty enforcer allowed an action")
	}
	if err := e.LoadYAML([]byte(`x: "@"`)); err != nil {
		t.Fatal(err)
	}
	if !enforce(t, e, "x", nil, Credentials{}) {
		t.Error("loaded rule not enforced")
	}
}

func TestNewEnforcerErrors(t *testing.T) {
	_, err := NewEnforcer(map[string]string{"ok": "@", "broken": "role:admin and"})
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), `default rule "broken"`) {
		t.Errorf("NewEnforcer error = %v, want a SyntaxError naming the rule", err)
	}
}

func TestLoadFileOverrides(t *testing.T) {
	e, err := NewEnforcer(testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	path := writePolicy(t, "policy.yaml", `
# Operators let project readers see servers too, and add a rule of their own.
"compute:servers:reset": "rule:admin_required or role:operator"
admin_or_owner: 'rule:admin_required or (project_id:%(project_id)s and role:member)'
"nimbus:custom": "role:auditor"
`)
	if err := e.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	target := map[string]any{"project_id": "p1"}
	if !enforce(t, e, "compute:servers:reset", target, Credentials{Roles: []string{"operator"}}) {
		t.Error("override not applied")
	}
	if enforce(t, e, "compute:servers:show", target, Credentials{ProjectID: "p1", Roles: []string{"reader"}}) {
		t.Error("overridden admin_or_owner still allows any project user")
	}
	if !enforce(t, e, "compute:servers:show", target, Credentials{ProjectID: "p1", Roles: []string{"member"}}) {
		t.Error("overridden admin_or_owner denies members")
	}
	if !enforce(t, e, "nimbus:custom", nil, Credentials{Roles: []string{"Auditor"}}) {
		t.Error("new rule not added")
	}
	rules := e.Rules()
	if rules["compute:servers:reset"] != "rule:admin_required or role:operator" || rules["admin_required"] != "role:admin" || rules["nimbus:custom"] != "role:auditor" {
		t.Errorf("Rules() = %v", rules)
	}

	// Reloading an edited file starts again from the defaults.
	if err := os.WriteFile(path, []byte(`"nimbus:custom": "!"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if enforce(t, e, "compute:servers:reset", target, Credentials{Roles: []string{"operator"}}) {
		t.Error("dropped override still applied after reload")
	}
	if got := e.Rules()["compute:servers:reset"]; got != testDefaults["compute:servers:reset"] {
		t.Errorf("after reload reset = %q, want the default", got)
	}
}

func TestLoadFileJSON(t *testing.T) {
	e, err := NewEnforcer(testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	path := writePolicy(t, "policy.json", "{\n\t\"admin_required\": \"role:admin or is_admin:True\",\n\t\"open\": \"\"\n}\n")
	if err := e.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if !enforce(t, e, "compute:servers:reset", nil, Credentials{IsAdmin: true}) {
		t.Error("JSON override not applied")
	}
	if !enforce(t, e, "open", nil, Credentials{}) {
		t.Error(`"" rule did not allow`)
	}
}

func TestLoadEmptyFile(t *testing.T) {
	e, err := NewEnforcer(testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"", "# only comments\n", "~\n", "{}"} {
		if err := e.LoadFile(writePolicy(t, "policy.yaml", content)); err != nil {
			t.Errorf("LoadFile(%q): %v", content, err)
		}
		if !maps.Equal(e.Rules(), testDefaults) {
			t.Errorf("LoadFile(%q) changed rules to %v", content, e.Rules())
		}
	}
}

// TestLoadFileErrors checks each bad file is reported with enough context
// to fix it and leaves the previous rules in force.
func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"syntax error", "ok: '@'\n\"compute:servers:show\": \"role:admin or\"\n", []string{`rule "compute:servers:show" (line 2)`, `dangling "or"`}},
		{"unbalanced", "a: (role:x\n", []string{`rule "a" (line 1)`, `unbalanced "("`}},
		{"empty check name", "a: \":x\"\n", []string{`rule "a"`, "empty check name"}},
		{"http check", "a: \"http://example.com\"\n", []string{`rule "a"`, "not supported"}},
		{"bad yaml", "a: [\n", []string{"parse YAML"}},
		{"not a mapping", "- role:admin\n", []string{"must be a mapping"}},
		{"null value", "a:\n", []string{`rule "a" (line 1)`, "has no value"}},
		{"list syntax", "a: [[\"role:admin\"]]\n", []string{`rule "a"`, "list-of-lists"}},
		{"non-string value", "a: true\n", []string{`rule "a"`, "must be a string"}},
		{"duplicate", "a: '@'\nb: '!'\na: '!'\n", []string{`rule "a" (line 3)`, "already defined on line 1"}},
		{"cycle", "a: rule:b\nb: rule:a or @\n", []string{"rule reference cycle: a -> b -> a"}},
		{"cycle through default", "admin_required: rule:missing\ndefault: rule:admin_required\n", []string{"cycle: admin_required -> default -> admin_required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEnforcer(testDefaults)
			if err != nil {
				t.Fatal(err)
			}
			path := writePolicy(t, "policy.yaml", tt.content)
			err = e.LoadFile(path)
			if err == nil {
				t.Fatalf("LoadFile succeeded, rules %v", e.Rules())
			}
			for _, w := range append(tt.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !maps.Equal(e.Rules(), testDefaults) {
				t.Errorf("failed load changed rules to %v", e.Rules())
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	e, err := NewEnforcer(testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	err = e.LoadFile(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile(missing) = %v, want ErrNotExist", err)
	}
}

func TestCycleDetection(t *testing.T) {
	tests := []struct {
		name  string
		rules map[string]string
		path  string // "" means no cycle
	}{
		{"self", map[string]string{"a": "rule:a"}, "a -> a"},
		{"pair", map[string]string{"a": "role:x or rule:b", "b": "not rule:a"}, "a -> b -> a"},
		{"triangle", map[string]string{"a": "rule:b", "b": "rule:c", "c": "@ and rule:a"}, "a -> b -> c -> a"},
		{"default fallback loops", map[string]string{"default": "rule:undefined"}, "default -> default"},
		{"diamond is fine", map[string]string{"a": "rule:b and rule:c", "b": "rule:d", "c": "rule:d", "d": "@"}, ""},
		{"repeated reference is fine", map[string]string{"a": "rule:b or rule:b", "b": "@"}, ""},
		{"undefined without default is fine", map[string]string{"a": "rule:undefined"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewEnforcer(tt.rules)
			if tt.path == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *CycleError
			if !errors.As(err, &ce) || !errors.Is(err, ErrRuleCycle) {
				t.Fatalf("NewEnforcer = %v, want a CycleError", err)
			}
			if got := strings.Join(ce.Path, " -> "); got != tt.path {
				t.Errorf("cycle = %s, want %s", got, tt.path)
			}
		})
	}
}

// TestConcurrentReload runs Enforce against LoadFile under -race. Every
// generation of the file allows exactly the role named in it, so a reader
// must see either the old rule or the new one, never a mix.
func TestConcurrentReload(t *testing.T) {
	e, err := NewEnforcer(map[string]string{"act": "rule:gen", "gen": "role:r0"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.Enforce("act", nil, Credentials{Roles: []string{"r1"}}); err != nil {
					t.Error(err)
					return
				}
				_ = e.Rules()
			}
		})
	}
	for i := range 50 {
		path := filepath.Join(dir, fmt.Sprintf("p%d.yaml", i))
		content := fmt.Sprintf("gen: role:r%d\n", i%2)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.LoadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if !enforce(t, e, "act", nil, Credentials{Roles: []string{"r1"}}) {
		t.Error("last generation not in force")
	}
}

func TestZeroEnforcerDenies(t *testing.T) {
	var e Enforcer
	if enforce(t, &e, "x", nil, Credentials{Roles: []string{"admin"}}) {
		t.Error("zero Enforcer allowed an action")
	}
	if len(e.Rules()) != 0 {
		t.Errorf("zero Enforcer has rules %v", e.Rules())
	}
}
