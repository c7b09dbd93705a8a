package proxy

import (
	"net/http"
	"strconv"
)

// Quotas (Swift's account_quotas and container_quotas): an upload that
// would take an account past X-Account-Meta-Quota-Bytes, or a container
// past X-Container-Meta-Quota-Bytes or -Quota-Count, is 413.

func errOverQuota() error {
	return errText(http.StatusRequestEntityTooLarge, "Upload exceeds quota.")
}

// checkQuotaHeaders checks quota metadata being set: account quotas only
// by the reseller admin, all of them as integers.
func (p *Proxy) checkQuotaHeaders(q *request, kind string) error {
	h := q.r.Header
	switch kind {
	case "Account":
		if p.cfg.Middlewares.DisableAccountQuotas {
			return nil
		}
		_, set := h["X-Account-Meta-Quota-Bytes"]
		_, removed := h["X-Remove-Account-Meta-Quota-Bytes"]
		if !set && !removed {
			return nil
		}
		if q.ident == nil || !hasRoleFold(q.ident, p.cfg.ResellerAdminRole) {
			return errStatus(http.StatusForbidden)
		}
		if v := h.Get("X-Account-Meta-Quota-Bytes"); v != "" {
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				return errText(http.StatusBadRequest, "Invalid bytes quota.")
			}
		}
	case "Container":
		if p.cfg.Middlewares.DisableContainerQuotas {
			return nil
		}
		if v := h.Get("X-Container-Meta-Quota-Bytes"); v != "" && !isDigits(v) {
			return errText(http.StatusBadRequest, "Invalid bytes quota.")
		}
		if v := h.Get("X-Container-Meta-Quota-Count"); v != "" && !isDigits(v) {
			return errText(http.StatusBadRequest, "Invalid count quota.")
		}
	}
	return nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// checkQuotas refuses an upload of length bytes (-1: unknown) to names
// that would exceed a quota. Usage is read fresh, not from the info
// cache, when a quota is set, since the cache lags behind uploads.
func (p *Proxy) checkQuotas(q *request, names [3]string, length int64) error {
	length = max(length, 0)
	mw := p.cfg.Middlewares
	if !mw.DisableContainerQuotas {
		ci, err := p.containerInfo(q, names[0], names[1])
		if err != nil {
			return err
		}
		bytesQ, countQ := ci.header.Get("X-Container-Meta-Quota-Bytes"), ci.header.Get("X-Container-Meta-Quota-Count")
		if ci.exists && (isDigits(bytesQ) || isDigits(countQ)) {
			p.infos.drop(names[0] + "/" + names[1])
			if ci, err = p.containerInfo(q, names[0], names[1]); err != nil {
				return err
			}
			if isDigits(bytesQ) && usage(ci.header, "X-Container-Bytes-Used")+length > usage(ci.header, "X-Container-Meta-Quota-Bytes") {
				return errOverQuota()
			}
			if isDigits(countQ) && usage(ci.header, "X-Container-Object-Count")+1 > usage(ci.header, "X-Container-Meta-Quota-Count") {
				return errOverQuota()
			}
		}
	}
	if !mw.DisableAccountQuotas {
		ai, err := p.accountInfo(q, names[0])
		if err != nil {
			return err
		}
		if v := ai.header.Get("X-Account-Meta-Quota-Bytes"); ai.exists && v != "" {
			p.infos.drop(names[0])
			if ai, err = p.accountInfo(q, names[0]); err != nil {
				return err
			}
			if usage(ai.header, "X-Account-Bytes-Used")+length > usage(ai.header, "X-Account-Meta-Quota-Bytes") {
				return errOverQuota()
			}
		}
	}
	return nil
}

func usage(h http.Header, k string) int64 {
	n, _ := strconv.ParseInt(h.Get(k), 10, 64)
	return n
}
