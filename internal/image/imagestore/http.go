package imagestore

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// HTTP is a read-only store over http(s) URLs: the data of images
// registered with Glance's locations API, and the source of web-download.
// The URLs come from users, so every fetch goes through an SSRFGuard.
type HTTP struct {
	id     string
	client *http.Client
	guard  *SSRFGuard
}

var _ Store = (*HTTP)(nil)

// NewHTTP returns a read-only HTTP store. When guard is not nil every URL is
// checked before it is fetched; a nil client then means guard.Client(),
// which also re-checks addresses when connecting and on redirects. Pass
// a client of your own only if it enforces the same (or in tests).
func NewHTTP(id string, client *http.Client, guard *SSRFGuard) *HTTP {
	if client == nil {
		if guard != nil {
			client = guard.Client()
		} else {
			client = http.DefaultClient
		}
	}
	return &HTTP{id: id, client: client, guard: guard}
}

// ID implements Store.
func (h *HTTP) ID() string { return h.id }

// Description implements Store.
func (h *HTTP) Description() string { return "read-only image data at http(s) URLs" }

// ReadOnly implements Store.
func (h *HTTP) ReadOnly() bool { return true }

// Put implements Store; the store is read-only.
func (h *HTTP) Put(context.Context, string, io.Reader) (Location, int64, error) {
	return Location{}, 0, ErrReadOnly
}

// Delete implements Store; the store is read-only.
func (h *HTTP) Delete(context.Context, Location) error { return ErrReadOnly }

// Size asks the server how long the data at rawURL is (a HEAD request),
// which is how a location added through the locations API gets the
// image's size. The URL is checked like any fetch.
func (h *HTTP) Size(ctx context.Context, rawURL string) (int64, error) {
	if h.guard != nil {
		if err := h.guard.Check(ctx, rawURL); err != nil {
			return 0, fmt.Errorf("size of %s: %w", redact(rawURL), err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, rawURL, nil)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", redact(rawURL), err)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("size of image data: %w", err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return 0, fmt.Errorf("size of %s: %w", redact(rawURL), ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		return 0, fmt.Errorf("size of %s: unexpected status %s", redact(rawURL), resp.Status)
	case resp.ContentLength < 0:
		return 0, fmt.Errorf("size of %s: the server does not say", redact(rawURL))
	}
	return resp.ContentLength, nil
}

// Get implements Store. It asks for a byte range when offset or length is
// given, and copes with servers that ignore Range by skipping and
// truncating the full body itself.
func (h *HTTP) Get(ctx context.Context, loc Location, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", redact(loc.URL), offset)
	}
	if h.guard != nil {
		if err := h.guard.Check(ctx, loc.URL); err != nil {
			return nil, fmt.Errorf("get %s: %w", redact(loc.URL), err)
		}
	}
	if length == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", redact(loc.URL), err)
	}
	if r := rangeHeader(offset, length); r != "" {
		req.Header.Set("Range", r)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch image data: %w", err) // err names the URL, password stripped
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if offset > 0 {
			if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
				resp.Body.Close()
				return nil, fmt.Errorf("get %s: skip to offset %d: %w", redact(loc.URL), offset, err)
			}
		}
	case http.StatusPartialContent:
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != offset {
			resp.Body.Close()
			return nil, fmt.Errorf("get %s: server answered range %q, asked for offset %d",
				redact(loc.URL), resp.Header.Get("Content-Range"), offset)
		}
	case http.StatusNotFound, http.StatusGone:
		resp.Body.Close()
		return nil, fmt.Errorf("get %s: %w", redact(loc.URL), ErrNotFound)
	default:
		resp.Body.Close()
		return nil, fmt.Errorf("get %s: unexpected status %s", redact(loc.URL), resp.Status)
	}
	if length > 0 {
		return limitedReadCloser{io.LimitReader(resp.Body, length), resp.Body}, nil
	}
	return resp.Body, nil
}

// rangeHeader returns the Range header value for offset/length, or "" for
// the whole object.
func rangeHeader(offset, length int64) string {
	switch {
	case length > 0:
		return fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)
	case offset > 0:
		return fmt.Sprintf("bytes=%d-", offset)
	}
	return ""
}

// contentRangeStart parses the first byte position of "bytes a-b/size".
func contentRangeStart(v string) (int64, bool) {
	v, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(v, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	return n, err == nil
}

// redact hides userinfo in URLs that end up in errors and logs.
func redact(rawURL string) string {
	if i := strings.Index(rawURL, "://"); i >= 0 {
		rest := rawURL[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
			return rawURL[:i+3] + "xxxxx@" + rest[at+1:]
		}
	}
	return rawURL
}

// limitedReadCloser reads a prefix of a body and closes the whole body.
type limitedReadCloser struct {
	io.Reader
	io.Closer
}
