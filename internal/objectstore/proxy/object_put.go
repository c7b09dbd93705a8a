package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/bodyhash"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/bufpool"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
)

func (p *Proxy) objectPut(q *request) error {
	chunked := len(q.r.TransferEncoding) > 0 && q.r.TransferEncoding[0] == "chunked"
	if q.r.ContentLength < 0 && !chunked {
		return errStatus(http.StatusLengthRequired)
	}
	h := q.r.Header
	if ct := h.Get("Content-Type"); ct == "" || strings.EqualFold(h.Get("X-Detect-Content-Type"), "true") {
		h.Set("Content-Type", guessContentType(q.object))
	}
	return p.putObject(q, [3]string{q.account, q.container, q.object}, h, q.r.Body, q.r.ContentLength, nil)
}

// putObject checks and stores one object from body (length bytes, or -1
// for a chunked upload) with the metadata in h and answers the client;
// extra are response headers to add on success (a copy's X-Copied-From).
func (p *Proxy) putObject(q *request, names [3]string, h http.Header, body io.Reader, length int64, extra http.Header) error {
	if err := p.checkQuotas(q, names, length); err != nil {
		return err
	}
	if done, err := p.versionedPut(q, names, h, body, length, extra); done || err != nil {
		return err
	}
	if err := p.versionBeforeWrite(q, names); err != nil {
		return err
	}
	status, hdr, ts, err := p.storeObject(q, names, h, body, length)
	if err != nil {
		return err
	}
	if status == http.StatusCreated {
		for k, vs := range extra {
			q.w.Header()[k] = vs
		}
		q.w.Header().Set("Last-Modified", lastModified(ts))
	}
	writeStatus(q, status, hdr)
	return nil
}

// storeObject checks and stores one object and returns the cluster's
// answer without writing a response, so middlewares (SLO, bulk, form
// posts, versioning) can store objects on a client's behalf.
func (p *Proxy) storeObject(q *request, names [3]string, h http.Header, body io.Reader, length int64) (status int, hdr http.Header, timestamp string, err error) {
	if length > p.cfg.Constraints.MaxFileSize {
		return 0, nil, "", errText(http.StatusRequestEntityTooLarge, "Your request is too large.")
	}
	if v := h.Get("If-None-Match"); v != "" && v != "*" {
		return 0, nil, "", errText(http.StatusBadRequest, "If-None-Match only supports *")
	}
	if err := p.checkMetadata(h, "Object"); err != nil {
		return 0, nil, "", err
	}
	if _, err := deleteAt(h, time.Now()); err != nil {
		return 0, nil, "", err
	}
	sloListingHeaders(h)
	base := p.backendHeaders(q, p.clock.now())
	objectMetaHeaders(base, h)
	base.Set("Content-Type", h.Get("Content-Type"))
	for k, vs := range h {
		if k == "Etag" || k == "If-None-Match" || k == "X-Static-Large-Object" || strings.HasPrefix(k, "X-Object-Sysmeta-") {
			base[k] = vs
		}
	}
	slots, pl, err := p.objectWriteSlots(q, base, names)
	if err != nil {
		return 0, nil, "", err
	}
	nm := "/" + names[0] + "/" + names[1] + "/" + names[2]
	var answers []answer
	switch {
	case length >= 0 && length <= smallPutMax:
		// Small bodies (most objects by count) are read whole first and
		// sent in one piece: no 100-continue round trip and no pipe
		// per node, and a node that fails is simply replaced by a
		// handoff that gets the same bytes.
		b := make([]byte, length)
		if _, err := io.ReadFull(body, b); err != nil {
			return 0, nil, "", bodyReadErr(err)
		}
		answers = p.writeBody(q.ctx(), pl, http.MethodPut, nm, bySlot(slots), b)
	default:
		if answers, err = p.stream(q.ctx(), pl, nm, slots, body, length); err != nil {
			return 0, nil, "", err
		}
	}
	status, hdr = bestStatus(answers, pl.quorum())
	return status, hdr, base.Get("X-Timestamp"), nil
}

// lastModified is the Last-Modified of a timestamp: rounded up to the
// second, as the object servers answer it.
func lastModified(ts string) string {
	secs, frac, _ := strings.Cut(ts, ".")
	s, _ := strconv.ParseInt(secs, 10, 64)
	if strings.Trim(frac, "0") != "" {
		s++
	}
	return time.Unix(s, 0).UTC().Format(http.TimeFormat)
}

// putter is one storage server receiving an object body.
type putter struct {
	node   ring.Device
	pw     *io.PipeWriter
	cancel context.CancelFunc // abandons the request
	ready  chan struct{}      // closed when the server said 100 Continue
	done   chan struct{}      // closed when the request finished
	ans    answer             // set before done closes
	err    error
	dead   bool // a body write failed; no more are sent
}

var errPutFinished = errors.New("object put finished")

// startPut opens a PUT to node that waits for 100 Continue before the
// body: the object server checks the request (timestamps, If-None-Match,
// space) before it reads, so a node that refuses is replaced before any
// byte is sent.
func (p *Proxy) startPut(ctx context.Context, node ring.Device, pl placement, names string, h http.Header, length int64) *putter {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	pt := &putter{node: node, pw: pw, cancel: cancel, ready: make(chan struct{}), done: make(chan struct{})}
	var once sync.Once
	trace := &httptrace.ClientTrace{Got100Continue: func() { once.Do(func() { close(pt.ready) }) }}
	hh := h.Clone()
	hh.Set("Expect", "100-continue")
	go func() {
		defer close(pt.done)
		defer cancel()
		resp, err := p.send(httptrace.WithClientTrace(ctx, trace), http.MethodPut, node, pl, names, "", hh, pr, length)
		pr.CloseWithError(errPutFinished)
		if err != nil {
			pt.err = err
			return
		}
		pt.ans = answer{status: resp.StatusCode, header: resp.Header}
		discard(resp)
	}()
	return pt
}

// connect finds a node for one replica slot: the primary, or handoffs in
// turn while nodes fail. It returns a putter ready for the body, or the
// final answer of a node that refused the write (412, 409, ...).
func (p *Proxy) connect(ctx context.Context, pl placement, slot int, hand *handoffs, names string, h http.Header, length int64) (*putter, answer) {
	node, ok := pl.primaries[slot], !p.limiter.limited(pl.primaries[slot])
	for {
		if !ok {
			if node, ok = hand.take(); !ok {
				return nil, answer{}
			}
		}
		pt := p.startPut(ctx, node, pl, names, h, length)
		timer := time.NewTimer(p.cfg.NodeTimeout)
		select {
		case <-pt.ready:
			timer.Stop()
			return pt, answer{}
		case <-pt.done:
			timer.Stop()
			if pt.err == nil && pt.ans.status < 500 {
				return nil, pt.ans
			}
		case <-timer.C:
			pt.pw.CloseWithError(errors.New("no 100 Continue in time"))
			pt.cancel()
			<-pt.done
			p.limiter.failed(node)
		}
		ok = false
	}
}

// stream sends body to a node for every replica slot and returns each
// slot's answer. Fewer than a quorum of ready nodes, before or during the
// upload, is 503; a body over max_file_size is 413; a client that stops
// sending is 499.
func (p *Proxy) stream(ctx context.Context, pl placement, names string, slots []http.Header, body io.Reader, length int64) ([]answer, error) {
	// The object servers of this process take a large body's MD5 from
	// here instead of each hashing it (bodyhash).
	var digest *bodyhash.Digest
	if p.cfg.LocalTransport != nil && (length < 0 || length > 1<<20) {
		digest = bodyhash.Start()
		defer digest.Finish(errPutFinished) // a no-op once finished below
		ctx = bodyhash.WithDigest(ctx, digest)
	}
	hand := p.newHandoffs(pl)
	defer hand.close()
	answers := make([]answer, len(slots))
	putters := make([]*putter, len(slots))
	var wg sync.WaitGroup
	for i := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			putters[i], answers[i] = p.connect(ctx, pl, i, hand, names, slots[i], length)
		}()
	}
	wg.Wait()
	live := 0
	for _, pt := range putters {
		if pt != nil {
			live++
		}
	}
	abort := func(err error) {
		for _, pt := range putters {
			if pt != nil {
				pt.pw.CloseWithError(err)
				pt.cancel()
				<-pt.done
			}
		}
	}
	if live < pl.quorum() {
		abort(errors.New("no quorum"))
		if s, _ := bestStatus(answers, pl.quorum()); s/100 == 4 {
			return answers, nil // e.g. If-None-Match: * on an existing object
		}
		return nil, errStatus(http.StatusServiceUnavailable)
	}
	err := p.feed(body, putters, length, pl.quorum(), digest)
	if digest != nil {
		digest.Finish(err) // before the servers see the end of the body
	}
	if err != nil {
		abort(err)
		return nil, err
	}
	for i, pt := range putters {
		if pt == nil {
			continue
		}
		pt.pw.Close()
		<-pt.done
		answers[i] = pt.ans
	}
	return answers, nil
}

// feed copies body to every ready putter, and to digest if not nil. A
// putter whose node fails is dropped; the upload stops when fewer than a
// quorum remain.
func (p *Proxy) feed(body io.Reader, putters []*putter, length int64, quorum int, digest *bodyhash.Digest) error {
	pool := bufpool.For(length)
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			total += int64(n)
			if total > p.cfg.Constraints.MaxFileSize {
				return errText(http.StatusRequestEntityTooLarge, "Your request is too large.")
			}
			if digest != nil {
				digest.Write(buf[:n])
			}
			live := 0
			for _, pt := range putters {
				if pt == nil || pt.dead {
					continue
				}
				if _, err := pt.pw.Write(buf[:n]); err != nil {
					pt.dead = true
					p.log.Warn("object upload to node failed", "node", pt.node.String(), "err", err)
					continue
				}
				live++
			}
			if live < quorum {
				return errStatus(http.StatusServiceUnavailable)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return bodyReadErr(rerr)
		}
	}
	if length >= 0 && total != length {
		return errStatus(statusClientDisconnect)
	}
	return nil
}

// bodyReadErr is the answer to a client body that could not be read: 413
// past a size limit, else the client went away (499).
func bodyReadErr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errText(http.StatusRequestEntityTooLarge, "Your request is too large.")
	}
	return errStatus(statusClientDisconnect)
}

// smallPutMax is the largest body storeObject reads before sending it
// instead of streaming it to the nodes as it arrives.
const smallPutMax = 64 << 10
