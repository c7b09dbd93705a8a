package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
)

// backendPath is the storage server path of a name: the device and
// partition the ring chose, then the names. url.URL escapes it, so names
// with "?", "#" or "%" reach the server intact.
func backendURL(node ring.Device, part int, names, rawQuery string) string {
	u := url.URL{Scheme: "http", Host: node.Host(), Path: "/" + node.Name + "/" + strconv.Itoa(part) + names, RawQuery: rawQuery}
	return u.String()
}

// send makes one request to a storage server and records how it went
// for error limiting: connection failures, timeouts and 5xx count against
// the node; 507 (its disk is unmounted or full) suppresses it at once.
func (p *Proxy) send(ctx context.Context, method string, node ring.Device, pl placement, names, rawQuery string, h http.Header, body io.Reader, length int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, backendURL(node, pl.part, names, rawQuery), body)
	if err != nil {
		return nil, fmt.Errorf("build %s to %s: %w", method, node, err)
	}
	req.Header = h.Clone()
	if pl.policy != "" {
		// Object servers keep each policy's objects apart; the index
		// travels with every object request, as in Swift.
		req.Header.Set("X-Backend-Storage-Policy-Index", pl.policy)
	}
	req.ContentLength = length
	if body == nil {
		req.ContentLength = 0
		req.Body = http.NoBody
	}
	resp, err := p.client.Do(req)
	p.judge(node, resp, err)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, node, err)
	}
	return resp, nil
}

// judge records a node's answer for error limiting.
func (p *Proxy) judge(node ring.Device, resp *http.Response, err error) {
	switch {
	case err != nil:
		p.limiter.failed(node)
		p.log.Warn("storage node failed", "node", node.String(), "err", err)
	case resp.StatusCode == http.StatusInsufficientStorage:
		p.limiter.suppress(node)
		p.log.Warn("storage node out of space or unmounted; suppressed", "node", node.String())
	case resp.StatusCode >= 500:
		p.limiter.failed(node)
	}
}

// usable reports whether a node's answer settles a request: anything but
// a failure.
func usable(resp *http.Response) bool { return resp != nil && resp.StatusCode < 500 }

func discard(resp *http.Response) {
	if resp != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64*1024))
		resp.Body.Close()
	}
}

// read sends a GET or HEAD to the nodes of pl in turn and returns the
// first answer that is neither a failure nor a 404: the object may be on
// a handoff, or on a primary that was down when it was written. When
// every primary says 404 the handoffs are not asked, as in Swift. The
// caller closes the body. No answer is a 404 if any node said so, else 503.
func (p *Proxy) read(ctx context.Context, pl placement, method, names, rawQuery string, h http.Header) (*http.Response, error) {
	notFound, primary404 := 0, 0
	for node := range p.nodes(pl) {
		resp, err := p.send(ctx, method, node, pl, names, rawQuery, h, nil, 0)
		if err != nil || !usable(resp) {
			discard(resp)
			continue
		}
		if resp.StatusCode != http.StatusNotFound {
			return resp, nil
		}
		discard(resp)
		notFound++
		if slices.ContainsFunc(pl.primaries, func(d ring.Device) bool { return d.ID == node.ID }) {
			if primary404++; primary404 == len(pl.primaries) {
				break
			}
		}
	}
	if ctx.Err() != nil {
		return nil, errStatus(statusClientDisconnect)
	}
	if notFound > 0 {
		return nil, errStatus(http.StatusNotFound)
	}
	return nil, errStatus(http.StatusServiceUnavailable)
}

// readNewest is read for X-Newest: every primary is asked at once and the
// answer with the newest timestamp wins, so a client can see its own
// latest write even while replicas disagree.
func (p *Proxy) readNewest(ctx context.Context, pl placement, method, names, rawQuery string, h http.Header) (*http.Response, error) {
	resps := make([]*http.Response, len(pl.primaries))
	var wg sync.WaitGroup
	for i, node := range pl.primaries {
		if p.limiter.limited(node) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := p.send(ctx, method, node, pl, names, rawQuery, h, nil, 0)
			if err == nil && usable(resp) {
				resps[i] = resp
				return
			}
			discard(resp)
		}()
	}
	wg.Wait()
	var best *http.Response
	for _, r := range resps {
		if r == nil {
			continue
		}
		switch {
		case best == nil:
			best = r
			continue
		case best.StatusCode == http.StatusNotFound && r.StatusCode != http.StatusNotFound,
			r.StatusCode != http.StatusNotFound && backendTime(r) > backendTime(best):
			best, r = r, best
		}
		discard(r)
	}
	if best != nil && best.StatusCode != http.StatusNotFound {
		return best, nil
	}
	discard(best)
	return p.read(ctx, pl, method, names, rawQuery, h)
}

// backendTime is the timestamp a storage server reports for what it
// holds, in a form that sorts as a string (all are "%010d.%05d...").
func backendTime(r *http.Response) string {
	for _, k := range []string{"X-Backend-Timestamp", "X-Put-Timestamp", "X-Timestamp"} {
		if v := r.Header.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// answer is what one slot of a write ended with.
type answer struct {
	status int // 0: no node answered
	header http.Header
}

// write sends a bodyless write (account and container PUT/POST/DELETE,
// object POST/DELETE) to one node per replica. A slot whose node fails is
// retried on the next handoff, so a write still reaches a full set of
// nodes while a primary is down. headers gives each slot its headers
// (they differ in the X-Container-*/X-Account-* update targets).
func (p *Proxy) write(ctx context.Context, pl placement, method, names string, headers func(slot int) http.Header) []answer {
	return p.writeBody(ctx, pl, method, names, headers, nil)
}

// writeBody is write with a small body held in memory (empty for none),
// sent whole to each node and again to a handoff that replaces one.
func (p *Proxy) writeBody(ctx context.Context, pl placement, method, names string, headers func(slot int) http.Header, body []byte) []answer {
	hand := p.newHandoffs(pl)
	defer hand.close()
	out := make([]answer, len(pl.primaries))
	var wg sync.WaitGroup
	for slot, node := range pl.primaries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := headers(slot)
			cur, ok := node, !p.limiter.limited(node)
			for {
				if !ok {
					if cur, ok = hand.take(); !ok {
						return
					}
				}
				var rd io.Reader
				if len(body) > 0 {
					rd = bytes.NewReader(body)
				}
				resp, err := p.send(ctx, method, cur, pl, names, "", h, rd, int64(len(body)))
				if err == nil && usable(resp) {
					out[slot] = answer{status: resp.StatusCode, header: resp.Header}
					discard(resp)
					return
				}
				discard(resp)
				ok = false
			}
		}()
	}
	wg.Wait()
	return out
}

// bestStatus is Swift's best_response: the highest status of the first
// class (2xx, 3xx, 4xx) that a quorum of nodes answered with; 503 when no
// class reaches quorum.
func bestStatus(answers []answer, quorum int) (int, http.Header) {
	for _, class := range []int{200, 300, 400} {
		best, n := -1, 0
		for i, a := range answers {
			if a.status >= class && a.status < class+100 {
				n++
				if best < 0 || a.status > answers[best].status {
					best = i
				}
			}
		}
		if n >= quorum {
			return answers[best].status, answers[best].header
		}
	}
	return http.StatusServiceUnavailable, nil
}
