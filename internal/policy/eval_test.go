package policy

import (
	"encoding/json"
	"errors"
	"testing"
)

// keystoneGetUser is Keystone's identity:get_user default.
const keystoneGetUser = "(role:reader and system_scope:all) or (role:reader and domain_id:%(target.user.domain_id)s) or user_id:%(target.user.id)s"

type stringer string

func (s stringer) String() string { return string(s) }

func TestEvaluate(t *testing.T) {
	nestedUser := map[string]any{"target": map[string]any{"user": map[string]any{"id": "u2", "domain_id": "d1"}}}
	flatUser := map[string]any{"target.user.id": "u2", "target.user.domain_id": "d1"}
	mixedUser := map[string]any{"target.user": map[string]any{"id": "u2", "domain_id": "d1"}}

	tests := []struct {
		name   string
		rule   string
		rules  map[string]string // extra named rules
		target map[string]any
		creds  Credentials
		want   bool
	}{
		{name: "always", rule: "@", want: true},
		{name: "never", rule: "!", want: false},
		{name: "empty rule allows", rule: "", want: true},

		{name: "role held", rule: "role:admin", creds: Credentials{Roles: []string{"reader", "admin"}}, want: true},
		{name: "role case-insensitive", rule: "role:ADMIN", creds: Credentials{Roles: []string{"Admin"}}, want: true},
		{name: "role not held", rule: "role:admin", creds: Credentials{Roles: []string{"reader"}}, want: false},
		{name: "no roles", rule: "role:admin", want: false},
		{name: "role from Attrs", rule: "role:admin", creds: Credentials{Attrs: map[string]any{"roles": []any{"admin"}}}, want: true},
		{name: "role substituted", rule: "role:%(role)s", target: map[string]any{"role": "Reader"}, creds: Credentials{Roles: []string{"reader"}}, want: true},
		{name: "role substitution missing", rule: "role:%(role)s", creds: Credentials{Roles: []string{"reader"}}, want: false},
		{name: "quoted role", rule: "role:'admin'", creds: Credentials{Roles: []string{"admin"}}, want: true},
		{name: "roles as generic list", rule: "roles:admin", creds: Credentials{Roles: []string{"reader", "admin"}}, want: true},
		{name: "roles generic is case-sensitive", rule: "roles:Admin", creds: Credentials{Roles: []string{"admin"}}, want: false},

		{name: "owner", rule: "role:admin or project_id:%(project_id)s", target: map[string]any{"project_id": "p1"}, creds: Credentials{ProjectID: "p1"}, want: true},
		{name: "admin not owner", rule: "role:admin or project_id:%(project_id)s", target: map[string]any{"project_id": "p1"}, creds: Credentials{ProjectID: "p2", Roles: []string{"admin"}}, want: true},
		{name: "neither", rule: "role:admin or project_id:%(project_id)s", target: map[string]any{"project_id": "p1"}, creds: Credentials{ProjectID: "p2"}, want: false},
		{name: "missing target key is false", rule: "project_id:%(project_id)s", creds: Credentials{ProjectID: "p1"}, want: false},
		{name: "empty field never matches empty target", rule: "project_id:%(project_id)s", target: map[string]any{"project_id": ""}, want: false},
		{name: "nil target value is false", rule: "project_id:%(project_id)s", target: map[string]any{"project_id": nil}, creds: Credentials{Attrs: map[string]any{"project_id": nil}}, want: false},
		{name: "map target value is false", rule: "project_id:%(p)s", target: map[string]any{"p": map[string]any{}}, creds: Credentials{ProjectID: "map[]"}, want: false},
		{name: "literal value", rule: "system_scope:all", creds: Credentials{SystemScope: "all"}, want: true},
		{name: "literal mismatch", rule: "system_scope:all", creds: Credentials{ProjectID: "p1"}, want: false},
		{name: "named fields", rule: "user_id:u and user_domain_id:ud and project_domain_id:pd and domain_id:d",
			creds: Credentials{UserID: "u", UserDomainID: "ud", ProjectDomainID: "pd", DomainID: "d"}, want: true},
		{name: "named field beats Attrs", rule: "user_id:u1", creds: Credentials{UserID: "u1", Attrs: map[string]any{"user_id": "u2"}}, want: true},
		{name: "Attrs fills empty field", rule: "user_id:u2", creds: Credentials{Attrs: map[string]any{"user_id": "u2"}}, want: true},

		{name: "keystone system reader", rule: keystoneGetUser, target: nestedUser, creds: Credentials{Roles: []string{"reader"}, SystemScope: "all"}, want: true},
		{name: "keystone domain reader nested", rule: keystoneGetUser, target: nestedUser, creds: Credentials{Roles: []string{"reader"}, DomainID: "d1"}, want: true},
		{name: "keystone domain reader flat", rule: keystoneGetUser, target: flatUser, creds: Credentials{Roles: []string{"reader"}, DomainID: "d1"}, want: true},
		{name: "keystone domain reader mixed", rule: keystoneGetUser, target: mixedUser, creds: Credentials{Roles: []string{"reader"}, DomainID: "d1"}, want: true},
		{name: "keystone other domain", rule: keystoneGetUser, target: nestedUser, creds: Credentials{Roles: []string{"reader"}, DomainID: "d2"}, want: false},
		{name: "keystone domain member not reader", rule: keystoneGetUser, target: nestedUser, creds: Credentials{Roles: []string{"member"}, DomainID: "d1"}, want: false},
		{name: "keystone self", rule: keystoneGetUser, target: flatUser, creds: Credentials{UserID: "u2"}, want: true},
		{name: "keystone stranger", rule: keystoneGetUser, target: flatUser, creds: Credentials{UserID: "u3", Roles: []string{"reader"}, ProjectID: "p1"}, want: false},
		{name: "flat key wins over nested", rule: "user_id:%(target.user.id)s",
			target: map[string]any{"target.user.id": "flat", "target": map[string]any{"user": map[string]any{"id": "nested"}}},
			creds:  Credentials{UserID: "flat"}, want: true},
		{name: "map[string]string target", rule: "user_id:%(target.user.id)s",
			target: map[string]any{"target": map[string]any{"user": map[string]string{"id": "u2"}}},
			creds:  Credentials{UserID: "u2"}, want: true},

		{name: "is_admin True", rule: "is_admin:True", creds: Credentials{IsAdmin: true}, want: true},
		{name: "is_admin True denied", rule: "is_admin:True", creds: Credentials{}, want: false},
		{name: "is_admin False", rule: "is_admin:False", creds: Credentials{}, want: true},
		{name: "is_admin lowercase", rule: "is_admin:true", creds: Credentials{IsAdmin: true}, want: true},
		{name: "is_admin from Attrs", rule: "is_admin:True", creds: Credentials{Attrs: map[string]any{"is_admin": true}}, want: true},
		{name: "bool attr", rule: "is_admin_project:True", creds: Credentials{Attrs: map[string]any{"is_admin_project": true}}, want: true},

		{name: "literal left matches", rule: "'member':%(role.name)s", target: map[string]any{"role.name": "member"}, want: true},
		{name: "literal left nested target", rule: "'member':%(role.name)s", target: map[string]any{"role": map[string]any{"name": "member"}}, want: true},
		{name: "literal left is case-sensitive", rule: "'member':%(role.name)s", target: map[string]any{"role.name": "Member"}, want: false},
		{name: "literal left missing key", rule: "'member':%(role.name)s", want: false},
		{name: "True left", rule: "True:%(user.enabled)s", target: map[string]any{"user": map[string]any{"enabled": true}}, want: true},
		{name: "True left false value", rule: "True:%(user.enabled)s", target: map[string]any{"user": map[string]any{"enabled": false}}, want: false},
		{name: "True left string value", rule: "True:%(enabled)s", target: map[string]any{"enabled": "true"}, want: true},
		{name: "False left", rule: "False:%(enabled)s", target: map[string]any{"enabled": false}, want: true},
		{name: "quoted literal 'True' is a plain string", rule: "'True':%(enabled)s", target: map[string]any{"enabled": "true"}, want: false},

		{name: "list attr any element", rule: "groups:ops", creds: Credentials{Attrs: map[string]any{"groups": []string{"dev", "ops"}}}, want: true},
		{name: "list attr no element", rule: "groups:qa", creds: Credentials{Attrs: map[string]any{"groups": []any{"dev", "ops"}}}, want: false},
		{name: "list of maps", rule: "groups.name:ops", creds: Credentials{Attrs: map[string]any{"groups": []any{map[string]any{"name": "dev"}, map[string]any{"name": "ops"}}}}, want: true},
		{name: "typed list", rule: "ids:2", creds: Credentials{Attrs: map[string]any{"ids": []int{1, 2}}}, want: true},
		{name: "nested creds", rule: "token.user.id:u1", creds: Credentials{Attrs: map[string]any{"token": map[string]any{"user": map[string]any{"id": "u1"}}}}, want: true},
		{name: "flat creds", rule: "token.user.id:u1", creds: Credentials{Attrs: map[string]any{"token.user.id": "u1"}}, want: true},
		{name: "missing creds attr", rule: "token.user.id:u1", creds: Credentials{Attrs: map[string]any{"token": "x"}}, want: false},

		{name: "quoted value with space", rule: "name:'foo bar'", creds: Credentials{Attrs: map[string]any{"name": "foo bar"}}, want: true},
		{name: "quoted value is literal", rule: "name:'%(x)s'", target: map[string]any{"x": "y"}, creds: Credentials{Attrs: map[string]any{"name": "%(x)s"}}, want: true},
		{name: "percent escape", rule: "quota:100%%", creds: Credentials{Attrs: map[string]any{"quota": "100%"}}, want: true},
		{name: "multiple substitutions", rule: "id:%(a)s-%(b)s", target: map[string]any{"a": "x", "b": 7}, creds: Credentials{Attrs: map[string]any{"id": "x-7"}}, want: true},
		{name: "integer creds", rule: "level:3", creds: Credentials{Attrs: map[string]any{"level": 3}}, want: true},
		{name: "json float renders as int", rule: "level:%(n)s", target: map[string]any{"n": float64(3)}, creds: Credentials{Attrs: map[string]any{"level": json.Number("3")}}, want: true},
		{name: "fractional float", rule: "ratio:%(n)s", target: map[string]any{"n": 0.5}, creds: Credentials{Attrs: map[string]any{"ratio": "0.5"}}, want: true},
		{name: "stringer", rule: "user_id:%(owner)s", target: map[string]any{"owner": stringer("u1")}, creds: Credentials{UserID: "u1"}, want: true},

		{name: "not", rule: "not role:foo", creds: Credentials{Roles: []string{"bar"}}, want: true},
		{name: "not held", rule: "not role:foo", creds: Credentials{Roles: []string{"foo"}}, want: false},
		{name: "not and group", rule: "not role:foo and (rule:a or @)", rules: map[string]string{"a": "!"}, want: true},
		{name: "not and group denied", rule: "not role:foo and (rule:a or @)", rules: map[string]string{"a": "!"}, creds: Credentials{Roles: []string{"foo"}}, want: false},
		{name: "not binds tighter than and", rule: "not ! and !", want: false},
		{name: "and binds tighter than or", rule: "@ or ! and !", want: true},
		{name: "parentheses override", rule: "(@ or !) and !", want: false},

		{name: "rule reference", rule: "rule:admin_required", rules: map[string]string{"admin_required": "role:admin"}, creds: Credentials{Roles: []string{"admin"}}, want: true},
		{name: "rule reference denied", rule: "rule:admin_required", rules: map[string]string{"admin_required": "role:admin"}, want: false},
		{name: "chained references", rule: "rule:a", rules: map[string]string{"a": "rule:b", "b": "rule:c", "c": "@"}, want: true},
		{name: "undefined reference denies", rule: "rule:nope", want: false},
		{name: "undefined reference uses default", rule: "rule:nope", rules: map[string]string{"default": "role:member"}, creds: Credentials{Roles: []string{"member"}}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := map[string]string{"under_test": tt.rule}
			for k, v := range tt.rules {
				rules[k] = v
			}
			e, err := NewEnforcer(rules)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Enforce("under_test", tt.target, tt.creds)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("%s = %v, want %v", tt.rule, got, tt.want)
			}
		})
	}
}

// TestEvaluateCycleBackstop bypasses load-time cycle detection to check
// evaluation still terminates with ErrRuleCycle rather than overflowing.
func TestEvaluateCycleBackstop(t *testing.T) {
	rules := map[string]Rule{
		"a": &ruleRef{name: "b"},
		"b": &orRule{operands: []Rule{neverRule{}, &ruleRef{name: "a"}}},
	}
	ev := &evaluator{rules: rules, creds: &Credentials{}}
	ok, err := rules["a"].eval(ev, 0)
	if ok || !errors.Is(err, ErrRuleCycle) {
		t.Errorf("eval = %v, %v; want false, ErrRuleCycle", ok, err)
	}
	// An error inside "not" must not turn into an allow.
	ok, err = (&notRule{operand: rules["a"]}).eval(ev, 0)
	if ok || !errors.Is(err, ErrRuleCycle) {
		t.Errorf("not eval = %v, %v; want false, ErrRuleCycle", ok, err)
	}
	// Nor inside "and".
	ok, err = (&andRule{operands: []Rule{alwaysRule{}, rules["a"]}}).eval(ev, 0)
	if ok || !errors.Is(err, ErrRuleCycle) {
		t.Errorf("and eval = %v, %v; want false, ErrRuleCycle", ok, err)
	}
}
