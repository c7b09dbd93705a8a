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

// deleteMarkerType is the content type of the empty object history mode
// writes into the versions container when an object is deleted, so the
// history shows the deletion and stack mode can skip over it.
const deleteMarkerType = "application/x-deleted;swift_versions_deleted=1"

// versionsHeaders turns a container write's versioning headers into the
// system metadata they are stored as. The location is stored as the
// client sent it (clients send it URL-encoded and read back the same
// value); only its use decodes it, as Swift's versioned_writes does.
func (p *Proxy) versionsHeaders(q *request, base http.Header) error {
	if err := p.ovContainerHeaders(q, base); err != nil {
		return err
	}
	if p.cfg.Middlewares.DisableVersionedWrites {
		return nil
	}
	h := q.r.Header
	vl, hl := h.Get("X-Versions-Location"), h.Get("X-History-Location")
	if vl != "" && hl != "" {
		return errText(http.StatusBadRequest, "Only one of X-Versions-Location or X-History-Location may be specified")
	}
	set := func(loc, mode string) error {
		if strings.Contains(loc, "/") {
			return errText(http.StatusPreconditionFailed, "Container name cannot contain slashes")
		}
		base.Set(versionsLocationSysmeta, loc)
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

// versioning is a container's versions container (decoded) and mode, if
// any.
func (p *Proxy) versioning(q *request, names [3]string) (loc, mode string, err error) {
	if p.cfg.Middlewares.DisableVersionedWrites {
		return "", "", nil
	}
	ci, err := p.containerInfo(q, names[0], names[1])
	if err != nil || !ci.exists {
		return "", "", err
	}
	loc = ci.header.Get(versionsLocationSysmeta)
	if u, err := url.PathUnescape(loc); err == nil {
		loc = u
	}
	loc, _, _ = strings.Cut(loc, "/")
	return loc, ci.header.Get(versionsModeSysmeta), nil
}

// versionPrefix is where the versions of object name are kept.
func versionPrefix(name string) string { return fmt.Sprintf("%03x%s/", len(name), name) }

// versionBeforeWrite archives the current object before a PUT replaces it.
// The caller was authorized to write the versioned container; that alone
// lets the archive go into the versions container (Swift checks the
// versioned container's write ACL, then writes pre-authorized), so a user
// with only a container write ACL can still overwrite versioned objects.
func (p *Proxy) versionBeforeWrite(q *request, names [3]string) error {
	loc, _, err := p.versioning(q, names)
	if err != nil || loc == "" {
		return err
	}
	return p.archiveCurrent(q, names, loc)
}

// archiveCurrent copies the current object, if any, into loc under its
// version name.
func (p *Proxy) archiveCurrent(q *request, names [3]string, loc string) error {
	resp, err := p.openSource(q, names, "")
	if err != nil {
		if errorStatus(err) == http.StatusNotFound {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	dst := [3]string{names[0], loc, versionPrefix(names[2]) + resp.Header.Get("X-Timestamp")}
	status, _, _, err := p.storeObject(q, dst, storedHeaders(resp), resp.Body, resp.ContentLength)
	return versionStoreError(status, err)
}

// versionStoreError maps a failed write into the versions container to
// Swift's answers: 412 for a client error (a missing versions container),
// 503 otherwise.
func versionStoreError(status int, err error) error {
	switch {
	case err != nil:
		return err
	case status/100 == 2:
		return nil
	case status/100 == 4:
		return errStatus(http.StatusPreconditionFailed)
	}
	return errStatus(http.StatusServiceUnavailable)
}

// versionedDelete handles a DELETE in a versioned container; done
// reports that the response was written.
func (p *Proxy) versionedDelete(q *request, names [3]string) (done bool, err error) {
	loc, mode, err := p.versioning(q, names)
	if err != nil || loc == "" {
		return false, err
	}
	if mode == "history" {
		return false, p.historyDelete(q, names, loc)
	}
	versions, err := p.listVersions(q, names, loc)
	if err != nil || len(versions) == 0 {
		return false, err
	}
	target, err := p.popVersion(q, names, loc, versions)
	if err != nil || target == names {
		return false, err
	}
	status, hdr, err := p.removeObject(q, target)
	if err != nil {
		return false, err
	}
	if status == http.StatusNotFound {
		status = http.StatusNoContent
	}
	writeStatus(q, status, hdr)
	return true, nil
}

// historyDelete archives the current object and records the deletion
// with a delete marker; the caller then deletes the object itself.
func (p *Proxy) historyDelete(q *request, names [3]string, loc string) error {
	if err := p.archiveCurrent(q, names, loc); err != nil {
		return err
	}
	h := http.Header{"Content-Type": {deleteMarkerType}}
	marker := [3]string{names[0], loc, versionPrefix(names[2]) + p.clock.now()}
	status, _, _, err := p.storeObject(q, marker, h, strings.NewReader(""), 0)
	return versionStoreError(status, err)
}

// versionEntry is one row of a versions container listing.
type versionEntry struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
}

// listVersions lists the archived versions of names, newest first.
func (p *Proxy) listVersions(q *request, names [3]string, loc string) ([]versionEntry, error) {
	var all []versionEntry
	marker := ""
	for {
		v := url.Values{"format": {"json"}, "prefix": {versionPrefix(names[2])}, "reverse": {"true"}, "marker": {marker}}
		resp, err := p.read(q.ctx(), place(p.rings.container, names[0], loc, ""), http.MethodGet, "/"+names[0]+"/"+loc, v.Encode(), p.backendHeaders(q, ""))
		if err != nil {
			if errorStatus(err) == http.StatusNotFound {
				return all, nil
			}
			return nil, err
		}
		var page []versionEntry
		if resp.StatusCode == http.StatusOK {
			err = json.NewDecoder(resp.Body).Decode(&page)
		}
		discard(resp)
		if err != nil {
			return nil, fmt.Errorf("list versions of %s: %w", names[2], err)
		}
		if len(page) == 0 {
			return all, nil
		}
		all = append(all, page...)
		marker = page[len(page)-1].Name
	}
}

// popVersion restores the newest archived version over names, as stack
// mode's DELETE does, and returns what the DELETE should then remove:
// the restored version, a delete marker, or names itself. A newest delete
// marker means the object was deleted in history mode: if the object
// exists again the DELETE removes it; otherwise the version before the
// marker is restored and the marker removed.
func (p *Proxy) popVersion(q *request, names [3]string, loc string, versions []versionEntry) ([3]string, error) {
	for i, v := range versions {
		if v.ContentType != deleteMarkerType {
			restored, err := p.restoreVersion(q, names, loc, v.Name)
			if err != nil {
				return names, err
			}
			if restored {
				return [3]string{names[0], loc, v.Name}, nil
			}
			continue
		}
		cur, err := p.openSource(q, names, "")
		if err == nil {
			discard(cur)
			return names, nil
		}
		if errorStatus(err) != http.StatusNotFound {
			return names, err
		}
		for _, older := range versions[i+1:] {
			if older.ContentType == deleteMarkerType {
				break
			}
			restored, err := p.restoreVersion(q, names, loc, older.Name)
			if err != nil {
				return names, err
			}
			if !restored {
				continue
			}
			status, _, err := p.removeObject(q, [3]string{names[0], loc, older.Name})
			if err != nil {
				return names, err
			}
			if status != http.StatusNotFound {
				if err := versionStoreError(status, nil); err != nil {
					return names, err
				}
			}
			break
		}
		return [3]string{names[0], loc, v.Name}, nil
	}
	return names, nil
}

// restoreVersion copies the archived version over names; false if the
// version vanished meanwhile.
func (p *Proxy) restoreVersion(q *request, names [3]string, loc, version string) (bool, error) {
	old, err := p.openSource(q, [3]string{names[0], loc, version}, "")
	if errorStatus(err) == http.StatusNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer old.Body.Close()
	status, _, _, err := p.storeObject(q, names, storedHeaders(old), old.Body, old.ContentLength)
	if err := versionStoreError(status, err); err != nil {
		return false, err
	}
	return true, nil
}
