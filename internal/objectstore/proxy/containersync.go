package proxy

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/containersync"
)

// Container sync, the proxy's part (Swift's container_sync middleware and
// the sync key check of its auth middlewares): container writes setting
// X-Container-Sync-To are validated against the sync realms and
// allowed_sync_hosts, and object requests sent by another cluster's
// container-sync daemon are authorized by their signature instead of a
// token. The daemon itself is internal/objectstore/containersync.

// syncAuthorize authorizes a request made by a container-sync daemon:
// X-Container-Sync-Auth signed with a realm key and the target
// container's X-Container-Sync-Key, or (full-URL targets) the sync key
// itself in X-Container-Sync-Key. An authorized request keeps its
// X-Timestamp, so the copy has the original's time and listings on both
// sides agree. A bad signature is 401; a wrong bare key just leaves the
// request to the token check.
func (p *Proxy) syncAuthorize(q *request) (bool, error) {
	if p.cfg.Middlewares.DisableContainerSync || q.object == "" {
		return false, nil
	}
	auth := q.r.Header.Get("X-Container-Sync-Auth")
	key := q.r.Header.Get("X-Container-Sync-Key")
	ts := q.r.Header.Get("X-Timestamp")
	if auth == "" && key == "" {
		return false, nil
	}
	ci, err := p.containerInfo(q, q.account, q.container)
	if err != nil {
		return false, err
	}
	userKey := ci.header.Get("X-Container-Sync-Key")
	if auth == "" {
		switch q.r.Method {
		case http.MethodPut, http.MethodDelete, http.MethodHead:
		default:
			return false, nil
		}
		if userKey == "" || !validTimestamp(ts) || subtle.ConstantTimeCompare([]byte(key), []byte(userKey)) != 1 {
			return false, nil
		}
		q.syncTimestamp = ts
		return true, nil
	}
	realm, nonce, sig, ok := containersync.ParseAuthHeader(auth)
	valid := false
	if ok && userKey != "" {
		path := pyQuote(q.r.URL.Path)
		sigTS := ts
		if sigTS == "" {
			sigTS = "0"
		}
		for _, rk := range p.cfg.SyncRealms.Keys(realm) {
			want := containersync.Signature(q.r.Method, path, sigTS, nonce, rk, userKey)
			if subtle.ConstantTimeCompare([]byte(sig), []byte(want)) == 1 {
				valid = true
			}
		}
	}
	if !valid {
		p.log.Info("container sync request refused", "trans_id", q.transID, "path", q.r.URL.Path, "realm", realm)
		return false, &swiftError{status: http.StatusUnauthorized,
			header: http.Header{"Www-Authenticate": {`SwiftContainerSync realm="` + q.account + `"`}},
			body:   "X-Container-Sync-Auth header not valid; contact cluster operator for support."}
	}
	if validTimestamp(ts) {
		q.syncTimestamp = ts
	}
	return true, nil
}

// validTimestamp reports whether v is an X-Timestamp: seconds with an
// optional fraction and "_<hex offset>".
func validTimestamp(v string) bool {
	main, off, hasOff := strings.Cut(v, "_")
	if hasOff {
		if _, err := strconv.ParseUint(off, 16, 64); err != nil {
			return false
		}
	}
	f, err := strconv.ParseFloat(main, 64)
	return err == nil && f >= 0 && !strings.ContainsAny(main, "eEnNxX+-")
}

// checkSyncTo validates a container write's X-Container-Sync-To, as
// Swift's container server does (400 with its reason), and refuses sync
// on a container with object versioning, whose archive copies Swift's
// daemon would not send.
func (p *Proxy) checkSyncTo(q *request) error {
	v, set := q.r.Header["X-Container-Sync-To"]
	if !set || strings.TrimRight(v[0], "/") == "" {
		return nil
	}
	if p.cfg.Middlewares.DisableContainerSync {
		return errText(http.StatusBadRequest, "Container sync is not enabled in this cluster")
	}
	if _, err := containersync.ValidateSyncTo(v[0], p.cfg.AllowedSyncHosts, p.cfg.SyncRealms); err != nil {
		return errText(http.StatusBadRequest, err.Error())
	}
	if q.r.Method == http.MethodPost || q.r.Method == http.MethodPut {
		if q.r.Header.Get("X-Versions-Location") != "" || q.r.Header.Get("X-History-Location") != "" {
			return errText(http.StatusBadRequest, "Cannot configure container sync on a container with object versioning configured.")
		}
		ci, err := p.containerInfo(q, q.account, q.container)
		if err != nil {
			return err
		}
		if ci.exists && ci.header.Get(versionsLocationSysmeta) != "" {
			return errText(http.StatusBadRequest, "Cannot configure container sync on a container with object versioning configured.")
		}
	}
	return nil
}

// syncInfo is /info's container_sync section.
func (p *Proxy) syncInfo() map[string]any {
	return map[string]any{"realms": p.cfg.SyncRealms.Info(p.cfg.SyncCluster)}
}
