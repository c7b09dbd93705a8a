package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Object versioning (Swift's legacy versioned_writes): a container with
// X-Versions-Location (stack mode) or X-History-Location (history mode)
// keeps each overwritten object in that container as
// "<3 hex digits of the name's length><name>/<timestamp>". In stack mode
// a DELETE restores the newest archived version; in history mode it
// archives the current one and deletes it.

const (
	versionsLocationSysmeta = "X-Container-Sysmeta-Versions-Location"
	versionsModeSysmeta     = "X-Container-Sysmeta-Versions-Mode"
)

// versionsHeaders turns a container write's versioning headers into the
// system metadata they are stored as.
func (p *Proxy) versionsHeaders(q *request, base http.Header) error {
	if p.cfg.Middlewares.DisableVersionedWrites {
		return nil
	}
	h := q.r.Header
	vl, hl := h.Get("X-Versions-Location"), h.Get("X-History-Location")
	if vl != "" && hl != "" {
		return errText(http.StatusBadRequest, "Only one of X-Versions-Location or X-History-Location may be specified")
	}
	set := func(loc, mode string) error {
		if u, err := url.PathUnescape(loc); err == nil {
			loc = u
		}
		if strings.Contains(strings.Trim(loc, "/"), "/") {
			return errText(http.StatusPreconditionFailed, "Container name cannot contain slashes")
		}
		base.Set(versionsLocationSysmeta, strings.Trim(loc, "/"))
		base.Set(versionsModeSysmeta, mode)
		return nil
	}
	switch {
	case vl != "":
		return set(vl, "stack")
	case hl != "":
		return set(hl, "history")
	}
	_, vSet := h["X-Versions-Location"]
	_, hSet := h["X-History-Location"]
	_, vRm := h["X-Remove-Versions-Location"]
	_, hRm := h["X-Remove-History-Location"]
	if vSet || hSet || vRm || hRm {
		base.Set(versionsLocationSysmeta, "")
		base.Set(versionsModeSysmeta, "")
	}
	return nil
}

// showVersions exposes a container's versioning settings under their
// public names.
func (p *Proxy) showVersions(from, to http.Header) {
	if p.cfg.Middlewares.DisableVersionedWrites {
		return
	}
	if loc := from.Get(versionsLocationSysmeta); loc != "" {
		if from.Get(versionsModeSysmeta) == "history" {
			to.Set("X-History-Location", loc)
		} else {
			to.Set("X-Versions-Location", loc)
		}
	}
}

// versioning is a container's versions container and mode, if any.
func (p *Proxy) versioning(q *request, names [3]string) (loc, mode string, err error) {
	if p.cfg.Middlewares.DisableVersionedWrites {
		return "", "", nil
	}
	ci, err := p.containerInfo(q, names[0], names[1])
	if err != nil || !ci.exists {
		return "", "", err
	}
	return ci.header.Get(versionsLocationSysmeta), ci.header.Get(versionsModeSysmeta), nil
}

// versionPrefix is where the versions of object name are kept.
func versionPrefix(name string) string { return fmt.Sprintf("%03x%s/", len(name), name) }

// versionBeforeWrite archives the current object before a PUT (or a
// history-mode DELETE) replaces it.
func (p *Proxy) versionBeforeWrite(q *request, names [3]string) error {
	loc, _, err := p.versioning(q, names)
	if err != nil || loc == "" {
		return err
	}
	resp, err := p.openSource(q, names, "")
	if err != nil {
		if errorStatus(err) == http.StatusNotFound {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	if err := p.authorizePeer(q, [3]string{names[0], loc, "x"}, http.MethodPut); err != nil {
		return err
	}
	dst := [3]string{names[0], loc, versionPrefix(names[2]) + resp.Header.Get("X-Timestamp")}
	status, _, _, err := p.storeObject(q, dst, storedHeaders(resp), resp.Body, resp.ContentLength)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return errStatus(http.StatusPreconditionFailed)
	}
	return nil
}

// versionedDelete handles a DELETE in a versioned container; done
// reports that the response was written.
func (p *Proxy) versionedDelete(q *request, names [3]string) (done bool, err error) {
	loc, mode, err := p.versioning(q, names)
	if err != nil || loc == "" {
		return false, err
	}
	if mode == "history" {
		return false, p.versionBeforeWrite(q, names)
	}
	if err := p.authorizePeer(q, [3]string{names[0], loc, "x"}, http.MethodGet); err != nil {
		return false, err
	}
	v := url.Values{"format": {"json"}, "prefix": {versionPrefix(names[2])}, "reverse": {"true"}, "limit": {"1"}}
	resp, err := p.read(q.ctx(), place(p.rings.container, names[0], loc, ""), http.MethodGet, "/"+names[0]+"/"+loc, v.Encode(), p.backendHeaders(q, ""))
	if err != nil {
		if errorStatus(err) == http.StatusNotFound {
			return false, nil
		}
		return false, err
	}
	var newest []segment
	if resp.StatusCode == http.StatusOK {
		err = json.NewDecoder(resp.Body).Decode(&newest)
	}
	discard(resp)
	if err != nil {
		return false, fmt.Errorf("list versions of %s: %w", names[2], err)
	}
	if len(newest) == 0 {
		return false, nil
	}
	src := [3]string{names[0], loc, newest[0].Name}
	old, err := p.openSource(q, src, "")
	if err != nil {
		return false, err
	}
	defer old.Body.Close()
	status, _, _, err := p.storeObject(q, names, storedHeaders(old), old.Body, old.ContentLength)
	if err != nil {
		return false, err
	}
	if status/100 != 2 {
		writeStatus(q, status, nil)
		return true, nil
	}
	status, hdr, err := p.removeObject(q, src)
	if err != nil {
		return false, err
	}
	if status == http.StatusNotFound {
		status = http.StatusNoContent
	}
	writeStatus(q, status, hdr)
	return true, nil
}
