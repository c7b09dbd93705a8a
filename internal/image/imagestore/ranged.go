package imagestore

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// rangedGet reads offset/length (length < 0: to the end) of an object
// from an object service (S3, Swift): send sends the GET with the given
// headers; errFor turns an error answer into an error.
func rangedGet(offset, length int64, send func(http.Header) (*http.Response, error), errFor func(*http.Response) error) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("negative offset %d", offset)
	}
	var h http.Header
	if rg := rangeHeader(offset, length); rg != "" {
		h = http.Header{"Range": {rg}}
	}
	if length == 0 {
		// An empty range cannot be expressed; still check the object is
		// there by asking for its first byte.
		h = http.Header{"Range": {"bytes=0-0"}}
	}
	resp, err := send(h)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent:
	case http.StatusRequestedRangeNotSatisfiable:
		if length == 0 {
			// The object exists but is empty.
			drainClose(resp.Body)
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		fallthrough
	default:
		defer drainClose(resp.Body)
		return nil, errFor(resp)
	}
	if length == 0 {
		drainClose(resp.Body)
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	if resp.StatusCode == http.StatusOK && offset > 0 {
		// A gateway that ignores Range sends the whole object.
		if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("skip to offset %d: %w", offset, err)
		}
	}
	if length > 0 {
		return limitedReadCloser{io.LimitReader(resp.Body, length), resp.Body}, nil
	}
	return resp.Body, nil
}
