package proxy

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Temp URLs (Swift's tempurl middleware): an object URL signed with an
// account or container key grants one method on it (or on every object
// under temp_url_prefix) until temp_url_expires, without a token.

// digests are the HMAC hashes temp URLs and form posts may be signed
// with, by name and by the length of their hex signature.
var digests = map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New}

var digestByHexLen = map[int]string{40: "sha1", 64: "sha256", 128: "sha512"}

// parseSignature accepts a hex signature (its length names the digest)
// or "<digest>:<base64url>", and returns the digest and the hex form.
func parseSignature(sig string) (digest, hexSig string, ok bool) {
	if name, b64, found := strings.Cut(sig, ":"); found {
		raw, err := base64.URLEncoding.DecodeString(b64 + strings.Repeat("=", (4-len(b64)%4)%4))
		if err != nil {
			if raw, err = base64.StdEncoding.DecodeString(b64 + strings.Repeat("=", (4-len(b64)%4)%4)); err != nil {
				return "", "", false
			}
		}
		return name, hex.EncodeToString(raw), digests[name] != nil
	}
	name, found := digestByHexLen[len(sig)]
	return name, strings.ToLower(sig), found
}

// signatureValid reports whether hexSig is the HMAC of body under one
// of keys.
func signatureValid(digest, hexSig, body string, keys []string) bool {
	newHash := digests[digest]
	if newHash == nil {
		return false
	}
	for _, k := range keys {
		m := hmac.New(newHash, []byte(k))
		m.Write([]byte(body))
		if hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(hexSig)) {
			return true
		}
	}
	return false
}

// signingKeys are the temp URL keys of q's account and container, the
// account's first: keys[:accountKeys].
func (p *Proxy) signingKeys(q *request) (keys []string, accountKeys int, err error) {
	ai, err := p.accountInfo(q, q.account)
	if err != nil {
		return nil, 0, err
	}
	for _, k := range []string{"X-Account-Meta-Temp-Url-Key", "X-Account-Meta-Temp-Url-Key-2"} {
		if v := ai.header.Get(k); v != "" {
			keys = append(keys, v)
		}
	}
	accountKeys = len(keys)
	if q.container != "" {
		ci, err := p.containerInfo(q, q.account, q.container)
		if err != nil {
			return nil, 0, err
		}
		for _, k := range []string{"X-Container-Meta-Temp-Url-Key", "X-Container-Meta-Temp-Url-Key-2"} {
			if v := ci.header.Get(k); v != "" {
				keys = append(keys, v)
			}
		}
	}
	return keys, accountKeys, nil
}

// tempURLInvalid is Swift's answer to every bad temp URL.
func tempURLInvalid(q *request) error {
	body := "401 Unauthorized: Temp URL invalid\n"
	if q.r.Method == http.MethodHead {
		body = ""
	}
	return &swiftError{status: http.StatusUnauthorized, body: body, header: http.Header{"Www-Authenticate": {`Swift realm="` + q.account + `"`}}}
}

// parseExpires accepts a Unix time or ISO 8601 "2006-01-02T15:04:05Z".
func parseExpires(v string) (int64, bool) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, true
	}
	if t, err := time.Parse("2006-01-02T15:04:05Z", v); err == nil {
		return t.Unix(), true
	}
	return 0, false
}

// tempURL authorizes a request signed as a temp URL; signed reports
// whether it was one. A bad signature is 401.
func (p *Proxy) tempURL(q *request) (signed bool, err error) {
	query := q.r.URL.Query()
	if p.cfg.Middlewares.DisableTempURL || (!query.Has("temp_url_sig") && !query.Has("temp_url_expires")) {
		return false, nil
	}
	if !slices.Contains(p.cfg.Middlewares.TempURLMethods, q.r.Method) {
		return false, nil
	}
	expires, ok := parseExpires(query.Get("temp_url_expires"))
	sig := query.Get("temp_url_sig")
	if !ok || sig == "" || q.object == "" || expires < time.Now().Unix() {
		return false, tempURLInvalid(q)
	}
	digest, hexSig, ok := parseSignature(sig)
	if !ok || !p.cfg.Middlewares.digestAllowed(digest) {
		return false, tempURLInvalid(q)
	}
	signedPath := q.r.URL.Path
	if prefix, hasPrefix := query["temp_url_prefix"]; hasPrefix {
		if !strings.HasPrefix(q.object, prefix[0]) {
			return false, tempURLInvalid(q)
		}
		signedPath = "prefix:/v1/" + q.account + "/" + q.container + "/" + prefix[0]
	}
	keys, accountKeys, err := p.signingKeys(q)
	if err != nil {
		return false, err
	}
	// A HEAD may use a URL signed for GET, PUT or POST, as in Swift.
	methods := []string{q.r.Method}
	if q.r.Method == http.MethodHead {
		methods = []string{http.MethodHead, http.MethodGet, http.MethodPost, http.MethodPut}
	}
	valid := false
	for _, m := range methods {
		body := m + "\n" + strconv.FormatInt(expires, 10) + "\n" + signedPath
		if signatureValid(digest, hexSig, body, keys[:accountKeys]) {
			valid = true
			break
		}
		if signatureValid(digest, hexSig, body, keys[accountKeys:]) {
			valid, q.signedContainer = true, q.container
			break
		}
	}
	if !valid {
		return false, tempURLInvalid(q)
	}
	// Writes through a temp URL may not point at other objects (Swift's
	// DISALLOWED_INCOMING_HEADERS): the signature covers this object only.
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead && q.r.Method != http.MethodOptions {
		for _, k := range []string{"X-Object-Manifest", "X-Symlink-Target", "X-Copy-From"} {
			if _, set := q.r.Header[k]; set {
				return false, errText(http.StatusBadRequest, "The header '"+k+"' is not allowed in this tempurl")
			}
		}
	}
	q.signed = true
	q.r.Header.Del("X-Timestamp")
	p.tempURLResponse(q, query)
	return true, nil
}

// tempURLResponse hides private object metadata from temp URL users and
// sets Content-Disposition so browsers save (or, with inline, show) the
// object under a sensible name.
func (p *Proxy) tempURLResponse(q *request, query url.Values) {
	method := q.r.Method
	objPath := q.r.URL.Path
	onHeaders(q, func(status int, h http.Header) {
		for k := range h {
			if strings.HasPrefix(k, "X-Object-Meta-") && !strings.HasPrefix(k, "X-Object-Meta-Public-") {
				delete(h, k)
			}
		}
		if method != http.MethodGet || status/100 != 2 {
			return
		}
		filename := query.Get("filename")
		switch {
		case query.Has("inline") && filename != "":
			h.Set("Content-Disposition", dispositionFormat("inline", filename))
		case query.Has("inline"):
			h.Set("Content-Disposition", "inline")
		case filename != "":
			h.Set("Content-Disposition", dispositionFormat("attachment", filename))
		case h.Get("Content-Disposition") != "":
		default:
			h.Set("Content-Disposition", dispositionFormat("attachment", path.Base(strings.TrimRight(objPath, "/"))))
		}
	})
}

// dispositionFormat is Swift's: a quoted filename and an RFC 5987 one.
func dispositionFormat(kind, filename string) string {
	quotedSpace := strings.ReplaceAll(pyQuote(filename), "%20", " ")
	return kind + `; filename="` + quotedSpace + `"; filename*=UTF-8''` + pyQuote(filename)
}
