package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

func (p *Proxy) containerRequest(q *request) error {
	switch q.r.Method {
	case http.MethodGet, http.MethodHead:
		return p.containerGet(q)
	case http.MethodPut, http.MethodPost, http.MethodDelete:
		return p.containerWrite(q)
	}
	return methodNotAllowed("DELETE, GET, HEAD, POST, PUT")
}

// containerGet answers HEAD and the object listing; the listing
// parameters go to the container server as they came.
func (p *Proxy) containerGet(q *request) error {
	query, err := listingLimit(q.r.URL.RawQuery, p.cfg.Constraints.ContainerListingLimit)
	if err != nil {
		return err
	}
	h := p.backendHeaders(q, "")
	copyHeaders(h, q.r.Header, func(k string) bool { return k == "Accept" })
	resp, err := p.readAny(q, place(p.rings.container, q.account, q.container, ""), q.names(), query, h)
	if err != nil {
		return err
	}
	p.showVersions(resp.Header, q.w.Header())
	// Swift's proxy names the container's policy; clients (Tempest,
	// python-swiftclient's stat) expect the header on every HEAD and GET.
	if pol, err := p.cfg.Policies.FromHeader(resp.Header.Get("X-Backend-Storage-Policy-Index")); err == nil {
		q.w.Header().Set("X-Storage-Policy", pol.Name)
	}
	if err := p.symlinkListing(q, resp); err != nil {
		return err
	}
	return p.relay(q, resp)
}

// containerHeaders are the client headers a container write forwards.
func isContainerHeader(k string) bool {
	return k == "X-Container-Read" || k == "X-Container-Write" ||
		k == "X-Container-Sync-To" || k == "X-Container-Sync-Key"
}

// containerWrite sends a container PUT, POST or DELETE. A PUT into an
// account that does not exist creates the account first (Swift's
// account_autocreate); PUT and DELETE tell the account servers through
// the X-Account-* headers.
func (p *Proxy) containerWrite(q *request) error {
	method := q.r.Method
	if method != http.MethodDelete {
		if err := p.checkMetadata(q.r.Header, "Container"); err != nil {
			return err
		}
	}
	if !q.owner {
		dropOwnerHeaders(q.r.Header)
	}
	if method != http.MethodDelete {
		if err := p.checkQuotaHeaders(q, "Container"); err != nil {
			return err
		}
	}
	if err := checkWriteACL(q.r.Header.Get("X-Container-Write")); err != nil {
		return err
	}
	if err := p.checkSyncTo(q); err != nil {
		return err
	}
	var policyHeader [2]string
	if method == http.MethodPut {
		var err error
		if policyHeader, err = p.putPolicy(q.r.Header.Get("X-Storage-Policy")); err != nil {
			return err
		}
	}
	if method == http.MethodPut {
		ai, err := p.accountInfo(q, q.account)
		if err != nil {
			return err
		}
		if !ai.exists {
			if p.cfg.DisableAccountAutocreate {
				return errStatus(http.StatusNotFound)
			}
			if err := p.createAccount(q, q.account); err != nil {
				return err
			}
		}
	}
	base := p.backendHeaders(q, p.clock.now())
	if policyHeader[0] != "" {
		base.Set(policyHeader[0], policyHeader[1])
	}
	if method != http.MethodDelete {
		metaHeaders(base, q.r.Header, "Container")
		copyHeaders(base, q.r.Header, isContainerHeader)
		if err := p.versionsHeaders(q, base); err != nil {
			return err
		}
		if v := q.r.Header.Get("X-Container-Read"); v != "" {
			base.Set("X-Container-Read", cleanACL(v))
		}
	}
	pl := place(p.rings.container, q.account, q.container, "")
	slots := slotHeaders(base, len(pl.primaries))
	if method != http.MethodPost {
		spreadUpdates(slots, "X-Account", place(p.rings.account, q.account, "", ""))
	}
	status, hdr := bestStatus(p.write(q.ctx(), pl, method, q.names(), bySlot(slots)), pl.quorum())
	if vc := base.Get(ovContainerSysmeta); vc != "" && status/100 != 2 {
		// Versioning was being enabled and its versions container made
		// for a write that failed (a POST to a missing container, no
		// quorum): remove it, as Swift does, so that nothing is left
		// behind and the client can retry. An existing versions
		// container holding versions refuses the delete (409).
		p.reservedContainerWrite(q, http.MethodDelete, swiftUnquote(vc))
	}
	// Forget the cached info before answering, not after (a deferred drop
	// runs once the response is out): a client's next request, such as a
	// static web GET right after setting X-Container-Meta-Web-Listings,
	// must see the change.
	p.infos.drop(q.account + "/" + q.container)
	p.infos.drop(q.account)
	writeStatus(q, status, hdr)
	return nil
}

// putPolicy is the backend header a container PUT carries for the
// storage policy named in X-Storage-Policy (name or alias, any case):
// X-Backend-Storage-Policy-Index, which the container servers refuse with
// 409 for an existing container in another policy. Without a name it is
// X-Backend-Storage-Policy-Default, which applies only if the container
// is new, so a PUT that just updates metadata keeps the policy. Unknown
// and deprecated names are 400, with Swift's messages.
func (p *Proxy) putPolicy(name string) ([2]string, error) {
	if name == "" {
		return [2]string{"X-Backend-Storage-Policy-Default", strconv.Itoa(p.cfg.Policies.Default().Index)}, nil
	}
	pol, ok := p.cfg.Policies.ByName(name)
	if !ok {
		return [2]string{}, errText(http.StatusBadRequest, fmt.Sprintf("Invalid X-Storage-Policy '%s'", name))
	}
	if pol.Deprecated {
		return [2]string{}, errText(http.StatusBadRequest, fmt.Sprintf("Storage Policy '%s' is deprecated", pol.Name))
	}
	return [2]string{"X-Backend-Storage-Policy-Index", strconv.Itoa(pol.Index)}, nil
}

// checkWriteACL refuses referrer elements in X-Container-Write, which
// would otherwise look like they let anonymous users write.
func checkWriteACL(v string) error {
	if a := parseContainerACL(v); len(a.referrers) > 0 {
		return errText(http.StatusBadRequest, "Referrers not allowed in write ACL: "+strings.TrimSpace(v))
	}
	return nil
}

// cleanACL stores an ACL in canonical form: no spaces around elements,
// ".referrer:" written ".r:", as Swift's clean_acl.
func cleanACL(v string) string {
	a := parseContainerACL(v)
	var out []string
	for _, r := range a.referrers {
		out = append(out, ".r:"+r)
	}
	if a.rlistings {
		out = append(out, ".rlistings")
	}
	out = append(out, a.grantees...)
	return strings.Join(out, ",")
}
