package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// containerACL is a parsed X-Container-Read or X-Container-Write (Swift's
// "V1" ACL syntax): referrer elements (.r:<host>, .r:-<host>, .r:*),
// .rlistings, and grantees (project:user forms or role names).
type containerACL struct {
	referrers []string
	rlistings bool
	grantees  []string
}

func parseContainerACL(v string) containerACL {
	var a containerACL
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if i := strings.IndexByte(e, ':'); i > 0 && (e[:i] == ".r" || e[:i] == ".ref" || e[:i] == ".referer" || e[:i] == ".referrer") {
			// "*.example.com" means ".example.com" (the domain and its
			// subdomains), as Swift's clean_acl rewrites it.
			m := strings.TrimSpace(e[i+1:])
			neg, host := "", m
			if rest, ok := strings.CutPrefix(m, "-"); ok {
				neg, host = "-", strings.TrimSpace(rest)
			}
			if host != "*" && strings.HasPrefix(host, "*") {
				host = strings.TrimSpace(host[1:])
			}
			a.referrers = append(a.referrers, neg+host)
			continue
		}
		if e == ".rlistings" {
			a.rlistings = true
			continue
		}
		// Strip spaces around the colon: "p : u" is stored as "p:u".
		if p, u, ok := strings.Cut(e, ":"); ok {
			e = strings.TrimSpace(p) + ":" + strings.TrimSpace(u)
		}
		a.grantees = append(a.grantees, e)
	}
	return a
}

// referrerAllowed is Swift's referrer_allowed: the last matching
// element decides, "-" elements deny, "*" matches any request (even
// without a Referer), ".example.com" matches the domain and its subdomains.
func (a containerACL) referrerAllowed(referer string) bool {
	host := ""
	if u, err := url.Parse(referer); err == nil {
		host = u.Hostname()
	}
	allow := false
	for _, m := range a.referrers {
		deny := strings.HasPrefix(m, "-")
		m = strings.TrimPrefix(m, "-")
		match := m == "*" || (host != "" && (host == m || (strings.HasPrefix(m, ".") && strings.HasSuffix(host, m))))
		if match {
			allow = !deny
		}
	}
	return allow
}

// grants reports whether a grantee list (container ACL or an account ACL
// level) names the caller: "<project-id>:<user-id>" with "*" wildcards
// for either part, names in the default domain for compatibility, or a
// role the caller holds in the account's own project.
// Names match only when names says they may (see namesAllowed).
func (p *Proxy) grants(grantees []string, id *api.Identity, account string, names bool) bool {
	if id == nil {
		return false
	}
	inAccount := account == p.cfg.ResellerPrefix+id.ProjectID
	for _, g := range grantees {
		proj, user, pair := strings.Cut(g, ":")
		if !pair {
			if inAccount && hasRoleFold(id, g) {
				return true
			}
			continue
		}
		projOK := proj == "*" || proj == id.ProjectID || (names && proj == id.ProjectName)
		userOK := user == "*" || user == id.UserID || (names && user == id.UserName)
		if projOK && userOK && id.ProjectID != "" {
			return true
		}
	}
	return false
}

// inDefaultDomain reports whether the caller's user and project are in
// the default domain, where names are unique enough to appear in ACLs.
func inDefaultDomain(id *api.Identity) bool {
	return id.ProjectDomainID == "default" && id.UserDomainID == "default"
}

// namesAllowed is keystoneauth's _is_name_allowed_in_acl: names in a
// container ACL count only when the caller and the account's project are
// all in the default domain (a project name means nothing across
// domains). The account's domain is the one recorded when it was made.
func (p *Proxy) namesAllowed(q *request, id *api.Identity) (bool, error) {
	if id == nil || !inDefaultDomain(id) {
		return false, nil
	}
	if q.account == p.cfg.ResellerPrefix+id.ProjectID {
		return true, nil
	}
	ai, err := p.accountInfo(q, q.account)
	if err != nil {
		return false, err
	}
	d := ai.header.Get(projectDomainSysmeta)
	return ai.exists && (d == "" || d == "default"), nil
}

func hasRoleFold(id *api.Identity, role string) bool {
	for _, r := range id.Roles {
		if strings.EqualFold(r.Name, role) {
			return true
		}
	}
	return false
}

// accountACL is X-Account-Access-Control, Swift's "V2" JSON ACL.
type accountACL struct {
	Admin     []string `json:"admin,omitempty"`
	ReadWrite []string `json:"read-write,omitempty"`
	ReadOnly  []string `json:"read-only,omitempty"`
}

// accessLevel is what an account ACL gives a caller.
type accessLevel int

const (
	accessNone accessLevel = iota
	accessReadOnly
	accessReadWrite
	accessAdmin
)

// parseAccountACL validates an X-Account-Access-Control value and returns
// it in canonical form; an empty value or one granting nothing clears the
// ACL.
func parseAccountACL(v string) (string, error) {
	if strings.TrimSpace(v) == "" {
		return "", nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &raw); err != nil {
		return "", errText(http.StatusBadRequest, "Syntax error in input (JSON object expected)")
	}
	for k, lv := range raw {
		if k != "admin" && k != "read-write" && k != "read-only" {
			return "", errText(http.StatusBadRequest, fmt.Sprintf("Key %q not recognized", k))
		}
		var list []string
		if err := json.Unmarshal(lv, &list); err != nil {
			return "", errText(http.StatusBadRequest, fmt.Sprintf("Value for key %q must be a list of strings", k))
		}
	}
	var a accountACL
	_ = json.Unmarshal([]byte(v), &a)
	// An ACL granting nothing ("{}", empty lists) clears the stored one,
	// as Swift's format_acl does, rather than showing "{}" to the owner.
	if len(a.Admin)+len(a.ReadWrite)+len(a.ReadOnly) == 0 {
		return "", nil
	}
	out, err := json.Marshal(a)
	if err != nil {
		return "", fmt.Errorf("encode account acl: %w", err)
	}
	return string(out), nil
}

// level is the highest access the ACL grants the caller.
func (p *Proxy) level(stored string, id *api.Identity, account string) accessLevel {
	if stored == "" || id == nil {
		return accessNone
	}
	var a accountACL
	if json.Unmarshal([]byte(stored), &a) != nil {
		return accessNone
	}
	switch {
	case p.grants(a.Admin, id, account, inDefaultDomain(id)):
		return accessAdmin
	case p.grants(a.ReadWrite, id, account, inDefaultDomain(id)):
		return accessReadWrite
	case p.grants(a.ReadOnly, id, account, inDefaultDomain(id)):
		return accessReadOnly
	}
	return accessNone
}
