// Package policy implements the oslo.policy rule language, so operators can
// override Nimbus's default access rules with the same YAML policy files
// they write for Keystone and Nova.
//
// A service builds an Enforcer from its in-code defaults, optionally loads
// an operator's policy file over them, and asks Enforce before each action:
//
//	e, err := policy.NewEnforcer(map[string]string{
//		"admin_required":   "role:admin",
//		"identity:get_user": "rule:admin_required or user_id:%(target.user.id)s",
//	})
//	...
//	err = e.LoadFile("/etc/nimbus/policy.yaml")
//	...
//	ok, err := e.Enforce("identity:get_user", target, creds)
//
// # Grammar
//
// Rules use oslo.policy's "new" (string) syntax:
//
//	rule     = "" | or_expr .
//	or_expr  = and_expr { "or" and_expr } .
//	and_expr = not_expr { "and" not_expr } .
//	not_expr = "not" not_expr | primary .
//	primary  = "(" or_expr ")" | check .
//	check    = "@" | "!" | kind ":" value .
//	kind     = "rule" | "role" | attribute | "True" | "False" | quoted .
//	value    = quoted | template .
//	template = { character | "%%" | "%(" key ")s" } .
//	quoted   = "'" { character } "'" | `"` { character } `"` .
//
// "not" binds tighter than "and", which binds tighter than "or", so
// "not role:a and role:b or @" means "((not role:a) and role:b) or @".
// Keywords are case-insensitive; check kinds are not, so "Role:admin" is a
// generic check on a credential attribute named "Role".
//
// As in oslo, tokens are separated by white space, "(" may be glued to the
// front of a check and ")" to its end, and everything else up to white
// space belongs to the check. A check splits at its first ':', so
// "rule:identity:get_user" refers to the rule "identity:get_user". A value
// that should itself end in ")" or contain white space must be quoted.
//
// # Checks
//
//   - "@" always passes, "!" never does. The empty rule "" is "@".
//   - "rule:NAME" passes when the named rule does. An undefined name falls
//     back to the rule named "default" if there is one, else fails (oslo's
//     Rules.__missing__).
//   - "role:NAME" passes when the caller holds the role, compared
//     case-insensitively.
//   - "ATTR:VALUE" passes when the caller's credential attribute ATTR
//     (user_id, project_id, domain_id, system_scope, is_admin, roles,
//     anything in Credentials.Attrs; dots descend into nested maps) equals
//     VALUE. If the attribute is a list, any element may match. Booleans
//     compare as True/False, ignoring case, so "is_admin:True" works.
//   - "'LITERAL':VALUE", "True:VALUE", "False:VALUE" compare a constant with
//     VALUE, which is useful when VALUE comes from the target:
//     "'member':%(role.name)s", "True:%(user.enabled)s".
//
// VALUE may contain %(key)s substitutions, filled from the target as
// Python's "%" operator would: "project_id:%(project_id)s". Keys are looked
// up as flat dotted names ("target.user.domain_id", the way Keystone
// flattens its targets) or by descending nested maps, whichever is present.
// A key that is missing, nil, or names a map or list makes the check fail;
// it is not an error. "%%" is a literal percent sign. A quoted VALUE is
// taken literally, substitutions and all.
//
// # Differences from oslo.policy
//
// The language and evaluation follow oslo.policy. Where oslo quietly turns
// a mistake into "deny everything" (or, worse, "allow everyone"), this
// package reports it instead, at parse or load time:
//
//   - Syntax errors are returned as *SyntaxError with the column, rather
//     than logged and enforced as "!". That includes a check without ':',
//     an empty check name (":admin") or value ("role:"), a stray '%', a
//     blank rule of only white space, unbalanced parentheses and dangling
//     operators.
//   - "http:" and "https:" checks, which make oslo call out to a remote
//     server, are rejected: Nimbus does not do remote policy checks.
//   - Quotes are understood on both sides of a check and may enclose spaces
//     and parentheses. oslo only strips them on the left.
//   - Only quoted strings, True and False are literals on the left; oslo
//     also evaluates numbers and None there.
//   - Credential fields left empty, and nil values, never match. oslo
//     renders None as "None", which can match another None.
//   - In policy files, a rule with no value (oslo: allow everyone), the
//     deprecated list-of-lists syntax, and a rule name given twice are
//     errors, and "rule:" reference cycles are refused at load time where
//     oslo only logs them.
package policy
