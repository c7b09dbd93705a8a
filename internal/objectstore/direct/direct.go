// Package direct sends requests straight to storage servers, past the
// proxy, as Swift's direct_client does: for the node daemons (expirer,
// account reaper) that act on one replica at a time and read the answers
// of each.
package direct

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
)

// maxBody bounds what a response body may hold: a listing page of
// 10,000 rows fits; an object body is never read this way.
const maxBody = 16 << 20

// Client sends requests to storage servers.
type Client struct {
	HTTP    *http.Client
	Timeout time.Duration // per request; 10 s when zero
}

// Response is a storage server's answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends method to /<device>/<part>/<names...> on dev and reads the
// answer. An error means no answer (a status of any kind is a Response).
func (c Client) Do(ctx context.Context, method string, dev ring.Device, part int, names []string, query url.Values, h http.Header) (Response, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := url.URL{Scheme: "http", Host: dev.Host(), Path: "/" + dev.Name + "/" + strconv.Itoa(part) + "/" + strings.Join(names, "/"),
		RawQuery: query.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), http.NoBody)
	if err != nil {
		return Response{}, err
	}
	if h != nil {
		req.Header = h
	}
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: %w", method, dev.String(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: read answer: %w", method, dev.String(), err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// ContainerPolicy is a container's storage policy index, from the first
// replica that answers a HEAD. A container that is gone answers 404 with
// its policy still named; one never created is policy 0, where a DELETE
// of its objects finds nothing either.
func (c Client) ContainerPolicy(ctx context.Context, containers *ring.Ring, account, container string) (int, error) {
	part, nodes := containers.GetNodes(account, container, "")
	var errs []error
	for _, n := range nodes {
		r, err := c.Do(ctx, http.MethodHead, n, part, []string{account, container}, nil, http.Header{})
		switch {
		case err != nil:
			errs = append(errs, err)
		case r.Status/100 == 2 || r.Status == http.StatusNotFound:
			idx, _ := strconv.Atoi(r.Header.Get("X-Backend-Storage-Policy-Index"))
			return idx, nil
		default:
			errs = append(errs, fmt.Errorf("%s: status %d", n.String(), r.Status))
		}
	}
	return 0, fmt.Errorf("storage policy of container %s/%s: %w", account, container, errors.Join(errs...))
}

// ObjectNames lists up to limit object names of a container after
// marker, from the first replica that answers; none and no error when
// the container is gone.
func (c Client) ObjectNames(ctx context.Context, containers *ring.Ring, account, container, marker string, limit int) ([]string, error) {
	part, nodes := containers.GetNodes(account, container, "")
	q := url.Values{"format": {"json"}, "marker": {marker}, "limit": {strconv.Itoa(limit)}}
	var errs []error
	for _, n := range nodes {
		r, err := c.Do(ctx, http.MethodGet, n, part, []string{account, container}, q, http.Header{})
		switch {
		case err != nil:
			errs = append(errs, err)
		case r.Status == http.StatusNotFound || r.Status == http.StatusNoContent:
			return nil, nil
		case r.Status == http.StatusOK:
			var rows []struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(r.Body, &rows); err != nil {
				return nil, fmt.Errorf("listing of %s/%s from %s: %w", account, container, n.String(), err)
			}
			names := make([]string, len(rows))
			for i, row := range rows {
				names[i] = row.Name
			}
			return names, nil
		default:
			errs = append(errs, fmt.Errorf("%s: status %d", n.String(), r.Status))
		}
	}
	return nil, fmt.Errorf("list %s/%s: %w", account, container, errors.Join(errs...))
}

// Quorum sends one request per node, built by header(i), and reports
// success when a majority answered with a status that done accepts.
func (c Client) Quorum(ctx context.Context, method string, nodes []ring.Device, part int, names []string,
	header func(i int) http.Header, done func(status int) bool) error {
	ok := 0
	var errs []error
	for i, n := range nodes {
		r, err := c.Do(ctx, method, n, part, names, nil, header(i))
		switch {
		case err != nil:
			errs = append(errs, err)
		case done(r.Status):
			ok++
		default:
			errs = append(errs, fmt.Errorf("%s: status %d", n.String(), r.Status))
		}
	}
	if ok*2 > len(nodes) {
		return nil
	}
	return fmt.Errorf("%s %s: %w", method, strings.Join(names, "/"), errors.Join(errs...))
}

// SetUpdateTarget names, in h, the replica of a container (kind
// "Container") or account ("Account") that the storage server receiving
// replica i of a write must update: X-<kind>-Host, -Partition and
// -Device, the replicas paired in order as the proxy pairs them. Nothing
// is set when there are no nodes.
func SetUpdateTarget(h http.Header, kind string, part int, nodes []ring.Device, i int) {
	if len(nodes) == 0 {
		return
	}
	n := nodes[i%len(nodes)]
	h.Set("X-"+kind+"-Host", n.Host())
	h.Set("X-"+kind+"-Partition", strconv.Itoa(part))
	h.Set("X-"+kind+"-Device", n.Name)
}
