package proxy

import (
	"errors"
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/swiftfmt"
)

func (p *Proxy) accountRequest(q *request) error {
	switch q.r.Method {
	case http.MethodGet:
		if p.objectVersioningOn() {
			return p.ovAccountListing(q)
		}
		return p.accountGet(q)
	case http.MethodHead:
		return p.accountGet(q)
	case http.MethodPost:
		return p.accountWrite(q, http.MethodPost)
	case http.MethodPut, http.MethodDelete:
		if !p.cfg.AllowAccountManagement || q.ident == nil || !hasRoleFold(q.ident, p.cfg.ResellerAdminRole) {
			return methodNotAllowed("GET, HEAD, POST")
		}
		return p.accountWrite(q, q.r.Method)
	}
	return methodNotAllowed("GET, HEAD, POST")
}

// accountGet answers HEAD and the container listing. An account that does
// not exist yet answers as an empty one when accounts are auto-created,
// as Swift does, so a new project's first `swift list` is not a 404.
func (p *Proxy) accountGet(q *request) error {
	query, err := listingLimit(q.r.URL.RawQuery, p.cfg.Constraints.AccountListingLimit)
	if err != nil {
		return err
	}
	h := p.backendHeaders(q, "")
	copyHeaders(h, q.r.Header, func(k string) bool { return k == "Accept" })
	resp, err := p.readAny(q, place(p.rings.account, q.account, "", ""), q.names(), query, h)
	var se *swiftError
	if errors.As(err, &se) && se.status == http.StatusNotFound && !p.cfg.DisableAccountAutocreate {
		return p.emptyAccount(q)
	}
	if err != nil {
		return err
	}
	p.showAccountACL(q, resp.Header)
	if v := resp.Header.Get(projectDomainSysmeta); v != "" {
		q.w.Header().Set("X-Account-Project-Domain-Id", v)
	}
	return p.relay(q, resp)
}

// readAny is read, or readNewest when the client asks with X-Newest.
func (p *Proxy) readAny(q *request, pl placement, names, rawQuery string, h http.Header) (*http.Response, error) {
	if strings.EqualFold(q.r.Header.Get("X-Newest"), "true") {
		return p.readNewest(q.ctx(), pl, q.r.Method, names, rawQuery, h)
	}
	return p.read(q.ctx(), pl, q.r.Method, names, rawQuery, h)
}

// showAccountACL exposes the stored account ACL to owners under its
// public name.
func (p *Proxy) showAccountACL(q *request, h http.Header) {
	if v := h.Get(accountACLSysmeta); v != "" && q.owner {
		q.w.Header().Set("X-Account-Access-Control", v)
	}
}

// emptyAccount is the listing of an account that does not exist yet.
func (p *Proxy) emptyAccount(q *request) error {
	h := q.w.Header()
	h.Set("X-Account-Container-Count", "0")
	h.Set("X-Account-Object-Count", "0")
	h.Set("X-Account-Bytes-Used", "0")
	ts := p.clock.now()
	h.Set("X-Timestamp", ts)
	h.Set("X-Put-Timestamp", ts)
	switch swiftfmt.ListingFormat(q.r) {
	case "json":
		writeBody(q.w, q.r, http.StatusOK, "application/json; charset=utf-8", "[]")
	case "xml":
		writeBody(q.w, q.r, http.StatusOK, "application/xml; charset=utf-8",
			`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<account name="`+xmlEscape(q.account)+`"></account>`)
	default:
		writeBody(q.w, q.r, http.StatusNoContent, "text/plain; charset=utf-8", "")
	}
	return nil
}

// accountWrite sends an account POST (or a reseller's PUT/DELETE) to the
// account's nodes; a POST to an account that does not exist yet creates
// it first when auto-creation is on.
func (p *Proxy) accountWrite(q *request, method string) error {
	if err := p.checkMetadata(q.r.Header, "Account"); err != nil {
		return err
	}
	if err := p.checkQuotaHeaders(q, "Account"); err != nil {
		return err
	}
	h := p.backendHeaders(q, p.clock.now())
	metaHeaders(h, q.r.Header, "Account")
	if v, set := q.r.Header["X-Account-Access-Control"]; set && q.owner {
		acl, err := parseAccountACL(v[0])
		if err != nil {
			return err
		}
		h.Set(accountACLSysmeta, acl)
	}
	pl := place(p.rings.account, q.account, "", "")
	answers := p.write(q.ctx(), pl, method, q.names(), func(int) http.Header { return h })
	status, hdr := bestStatus(answers, pl.quorum())
	if status == http.StatusNotFound && method == http.MethodPost && !p.cfg.DisableAccountAutocreate {
		if err := p.createAccount(q, q.account); err != nil {
			return err
		}
		h.Set("X-Timestamp", p.clock.now())
		status, hdr = bestStatus(p.write(q.ctx(), pl, method, q.names(), func(int) http.Header { return h }), pl.quorum())
	}
	p.infos.drop(q.account) // before answering, as in containerWrite
	writeStatus(q, status, hdr)
	return nil
}

// createAccount is account_autocreate: PUT the account on its nodes.
func (p *Proxy) createAccount(q *request, account string) error {
	pl := place(p.rings.account, account, "", "")
	h := p.backendHeaders(q, p.clock.now())
	// keystoneauth records the project's domain on the account it creates
	// for a project's own token, so clients can tell which domain an
	// account belongs to (X-Account-Project-Domain-Id).
	if id := q.ident; id != nil && id.ProjectDomainID != "" && account == p.cfg.ResellerPrefix+id.ProjectID {
		h.Set(projectDomainSysmeta, id.ProjectDomainID)
	}
	defer p.infos.drop(account)
	status, _ := bestStatus(p.write(q.ctx(), pl, http.MethodPut, "/"+account, func(int) http.Header { return h }), pl.quorum())
	if status/100 != 2 {
		p.log.Warn("account auto-create failed", "account", account, "status", status, "trans_id", q.transID)
		return errStatus(http.StatusServiceUnavailable)
	}
	return nil
}
