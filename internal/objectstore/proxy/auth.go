package proxy

import (
	"errors"
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// identify validates the request's token, if any, and records who the
// caller is; it decides nothing about access.
func (p *Proxy) identify(q *request) error {
	token := q.r.Header.Get("X-Auth-Token")
	if token == "" {
		token = q.r.Header.Get("X-Storage-Token")
	}
	if token != "" {
		id, err := p.cfg.Tokens.ValidateToken(q.ctx(), token)
		if err != nil {
			var ae *api.Error
			if errors.As(err, &ae) && ae.Status >= 500 {
				return errStatus(http.StatusServiceUnavailable)
			}
			p.log.Debug("token rejected", "trans_id", q.transID, "err", err)
			return p.unauthorized()
		}
		q.ident = id
	}
	return nil
}

// authorize decides whether q's caller may make the request, with
// keystoneauth's rules:
//
//   - the reseller admin role may do anything on any account;
//   - an operator role in project P owns account <prefix>P;
//   - X-Account-Access-Control grants read-only, read-write or admin
//     (owner) access to other users;
//   - X-Container-Read / X-Container-Write grant access to a container's
//     objects (and listing, for read) by project:user or role, and
//     .r:<referrer> grants anonymous object reads (listings with .rlistings).
//
// A request that no rule allows is 401 without a token, 403 with one.
func (p *Proxy) authorize(q *request) error {
	ok, err := p.allowed(q, q.r.Method, q.container)
	if err != nil {
		return err
	}
	if !ok {
		return p.deny(q)
	}
	return nil
}

func (p *Proxy) unauthorized() error {
	e := errStatus(http.StatusUnauthorized)
	if p.cfg.AuthURL != "" {
		e.header = http.Header{"Www-Authenticate": {"Keystone uri='" + p.cfg.AuthURL + "'"}}
	}
	return e
}

// deny is 401 for anonymous callers and 403 for authenticated ones.
func (p *Proxy) deny(q *request) error {
	if q.ident == nil {
		return p.unauthorized()
	}
	return errStatus(http.StatusForbidden)
}

func isRead(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// allowed decides whether q's caller may do method on q's account and
// container (and object, when q names one); it sets q.owner for owners.
// COPY checks the source as a read; the destination is checked again by
// the copy as a PUT.
func (p *Proxy) allowed(q *request, method, container string) (bool, error) {
	if method == "COPY" {
		method = http.MethodGet
	}
	id := q.ident
	if !strings.HasPrefix(q.account, p.cfg.ResellerPrefix) {
		return false, nil
	}
	if id != nil {
		if hasRoleFold(id, p.cfg.ResellerAdminRole) {
			q.owner = true
			return true, nil
		}
		if id.ProjectID != "" && q.account == p.cfg.ResellerPrefix+id.ProjectID && p.isOperator(id) {
			q.owner = true
			return true, nil
		}
		ai, err := p.accountInfo(q, q.account)
		if err != nil {
			return false, err
		}
		switch p.level(ai.header.Get(accountACLSysmeta), id, q.account) {
		case accessAdmin:
			q.owner = true
			return true, nil
		case accessReadWrite:
			if container != "" || isRead(method) {
				return true, nil
			}
		case accessReadOnly:
			if isRead(method) {
				return true, nil
			}
		}
	}
	if container == "" || (q.object == "" && !isRead(method)) {
		return false, nil
	}
	ci, err := p.containerInfo(q, q.account, container)
	if err != nil || !ci.exists {
		return false, err
	}
	header := "X-Container-Write"
	if isRead(method) {
		acl := parseContainerACL(ci.header.Get("X-Container-Read"))
		if acl.referrerAllowed(q.r.Referer()) && (q.object != "" || acl.rlistings) {
			return true, nil
		}
		header = "X-Container-Read"
	}
	names, err := p.namesAllowed(q, id)
	if err != nil {
		return false, err
	}
	return p.grants(parseContainerACL(ci.header.Get(header)).grantees, id, q.account, names), nil
}

func (p *Proxy) isOperator(id *api.Identity) bool {
	for _, r := range p.cfg.OperatorRoles {
		if hasRoleFold(id, r) {
			return true
		}
	}
	return false
}
