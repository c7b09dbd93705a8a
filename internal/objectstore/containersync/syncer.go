package containersync

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/server"
)

// Config configures the container-sync daemon of one storage node.
type Config struct {
	// DevicesRoot holds the node's device directories.
	DevicesRoot string
	// ContainerRing finds this node's container databases and tells which
	// replica each is; ObjectRing places the objects to read.
	ContainerRing, ObjectRing *ring.Ring
	// PolicyRings are the object rings of storage policies other than 0,
	// by index: a container's objects are read with its policy's ring.
	PolicyRings map[int]*ring.Ring
	// LocalHost is this node's container server as the ring knows it.
	LocalHost string
	// Realms are the sync realms; AllowedSyncHosts the hosts full-URL
	// targets may name (Swift's allowed_sync_hosts, 127.0.0.1).
	Realms           *Realms
	AllowedSyncHosts []string
	// Interval is the pause between passes (Swift's 300 s).
	Interval time.Duration
	// ContainerTime bounds the time spent on one container per pass
	// (Swift's container_time, 60 s); the rest waits for the next pass.
	ContainerTime time.Duration
	// Timeout bounds one request.
	Timeout time.Duration
	// Client sends the requests to the storage servers and remote proxies.
	Client *http.Client
	// Logger receives operational logs.
	Logger *slog.Logger
}

// Syncer is the container-sync daemon.
type Syncer struct {
	cfg Config
}

// Stats counts what one pass did.
type Stats struct {
	// Puts and Deletes count rows sent; Skipped rows the remote already
	// had; Failures rows or containers left for the next pass.
	Puts, Deletes, Skipped, Failures int
}

// New returns the daemon for cfg.
func New(cfg Config) (*Syncer, error) {
	if cfg.DevicesRoot == "" || cfg.ContainerRing == nil || cfg.ObjectRing == nil || cfg.LocalHost == "" {
		return nil, errors.New("container sync config: devices root, rings and local host are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Minute
	}
	if cfg.ContainerTime <= 0 {
		cfg.ContainerTime = time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.AllowedSyncHosts == nil {
		cfg.AllowedSyncHosts = []string{"127.0.0.1"}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With("daemon", "container-sync")
	return &Syncer{cfg: cfg}, nil
}

// Run syncs every Interval until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	server.RunEvery(ctx, s.cfg.Interval, func(ctx context.Context) {
		if st := s.SyncOnce(ctx); st.Puts+st.Deletes+st.Failures > 0 {
			s.cfg.Logger.Info("container sync pass", "puts", st.Puts, "deletes", st.Deletes, "failures", st.Failures)
		}
	})
}

// SyncOnce makes one pass over the container databases of this node.
func (s *Syncer) SyncOnce(ctx context.Context) Stats {
	var st Stats
	server.EachLocalDB(ctx, s.cfg.ContainerRing, s.cfg.DevicesRoot, s.cfg.LocalHost, server.KindContainer, s.cfg.Logger,
		func(d ring.Device, f server.DBFile) {
			if err := s.syncContainer(ctx, f.Path, d, &st); err != nil {
				st.Failures++
				s.cfg.Logger.Warn("container sync", "db", f.Path, "err", err)
			}
		})
	return st
}

// job is one container being synced.
type job struct {
	state  server.SyncState
	target Target
}

// syncContainer sends the rows of one database past its sync points, as
// Swift's container_sync does in two stages. Every replica first offers
// the rows above point1 whose name hashes to its own replica index, so
// the replicas share the work; later passes send every row between
// point2 and point1, so that a row whose replica failed (or was down) is
// still sent, and the remote's X-Timestamp makes the repeats cheap
// (a HEAD, no body). A row that fails in that stage holds point2 back for
// the next pass.
func (s *Syncer) syncContainer(ctx context.Context, path string, dev ring.Device, st *Stats) error {
	db, err := server.OpenDB(path)
	if err != nil {
		return err
	}
	defer db.Close()
	state, err := server.ReadSyncState(ctx, db)
	if err != nil {
		return err
	}
	if state.Deleted || state.SyncTo == "" || state.SyncKey == "" || state.Versioned {
		return nil
	}
	_, nodes := s.cfg.ContainerRing.GetNodes(state.Account, state.Container, "")
	ordinal := -1
	for i, n := range nodes {
		if n.Host() == s.cfg.LocalHost && n.Name == dev.Name {
			ordinal = i
		}
	}
	if ordinal < 0 {
		return nil // a handoff copy: the primaries sync
	}
	target, err := ValidateSyncTo(state.SyncTo, s.cfg.AllowedSyncHosts, s.cfg.Realms)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", state.Account, state.Container, err)
	}
	j := job{state: state, target: target}
	stop := time.Now().Add(s.cfg.ContainerTime)
	p1, p2 := state.Point1, state.Point2
	save := func() error { return server.SaveSyncPoints(ctx, db, p1, p2, state.SyncTo) }
	heldAt := int64(-2) // point2 to keep when a row failed; -2: none failed
	for time.Now().Before(stop) && p2 < p1 {
		rows, err := server.ReadSyncRows(ctx, db, p2, 100)
		if err != nil {
			return err
		}
		done := len(rows) == 0
		for _, r := range rows {
			if r.RowID > p1 {
				done = true
				break
			}
			if !s.syncRow(ctx, j, r, st) && heldAt == -2 {
				heldAt = p2
			}
			p2 = r.RowID
		}
		if done {
			break
		}
	}
	if heldAt != -2 {
		p2 = heldAt
	}
	if err := save(); err != nil {
		return err
	}
	for time.Now().Before(stop) {
		rows, err := server.ReadSyncRows(ctx, db, p1, 100)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			h := s.cfg.ContainerRing.Hash(state.Account, state.Container, r.Name)
			if int(binary.BigEndian.Uint32(h[:4])%uint32(len(nodes))) == ordinal {
				s.syncRow(ctx, j, r, st)
			}
			p1 = r.RowID
		}
		if err := save(); err != nil {
			return err
		}
	}
	return nil
}

// syncRow sends one row's change to the target: a DELETE for a deleted
// row, else the object itself unless the remote already has it at least
// as new. It reports success; failures are logged and counted.
func (s *Syncer) syncRow(ctx context.Context, j job, r server.SyncRow, st *Stats) bool {
	var err error
	switch {
	case r.Deleted:
		err = s.remoteDelete(ctx, j, r)
		if err == nil {
			st.Deletes++
		}
	default:
		var sent bool
		sent, err = s.remotePut(ctx, j, r)
		switch {
		case err != nil:
		case sent:
			st.Puts++
		default:
			st.Skipped++
		}
	}
	if err != nil {
		st.Failures++
		s.cfg.Logger.Info("sync row failed; retried on a later pass", "account", j.state.Account,
			"container", j.state.Container, "object", r.Name, "to", j.target.URL, "err", err)
		return false
	}
	return true
}

func (s *Syncer) remoteDelete(ctx context.Context, j job, r server.SyncRow) error {
	resp, err := s.remote(ctx, j, http.MethodDelete, r.Name, r.CreatedAt, nil, nil)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusConflict {
		return nil
	}
	return fmt.Errorf("remote delete: status %d", resp.StatusCode)
}

// remotePut copies the object of row r; false when the remote already
// had it at least as new.
func (s *Syncer) remotePut(ctx context.Context, j job, r server.SyncRow) (bool, error) {
	rowTS, err := server.ParseTimestamp(r.CreatedAt)
	if err != nil {
		return false, fmt.Errorf("row timestamp %q: %w", r.CreatedAt, err)
	}
	head, err := s.remote(ctx, j, http.MethodHead, r.Name, r.CreatedAt, nil, nil)
	if err != nil {
		return false, err
	}
	drain(head)
	if head.StatusCode/100 == 2 {
		if remote, err := server.ParseTimestamp(head.Header.Get("X-Timestamp")); err == nil && rowTS.Compare(remote) <= 0 {
			return false, nil
		}
	} else if head.StatusCode != http.StatusNotFound {
		return false, fmt.Errorf("remote head: status %d", head.StatusCode)
	}
	local, err := s.newest(ctx, j.state, r.Name)
	if err != nil {
		return false, err
	}
	defer local.Body.Close()
	localTS, err := server.ParseTimestamp(local.Header.Get("X-Timestamp"))
	if err != nil || localTS.Compare(rowTS) < 0 {
		// The object servers have not caught up with the listing yet.
		return false, fmt.Errorf("local object older than its row (%s < %s)", local.Header.Get("X-Timestamp"), r.CreatedAt)
	}
	h := http.Header{}
	for k, vs := range local.Header {
		if syncedHeader(k) {
			h[k] = vs
		}
	}
	resp, err := s.remote(ctx, j, http.MethodPut, r.Name, local.Header.Get("X-Timestamp"), h, local)
	if err != nil {
		return false, err
	}
	drain(resp)
	if resp.StatusCode/100 != 2 {
		return false, fmt.Errorf("remote put: status %d", resp.StatusCode)
	}
	return true, nil
}

// syncedHeader reports whether an object server's response header is
// part of the object and so goes with the copy.
func syncedHeader(k string) bool {
	switch k {
	case "Content-Type", "Etag", "Content-Encoding", "Content-Disposition", "Content-Language",
		"Cache-Control", "Expires", "X-Delete-At", "X-Object-Manifest", "X-Static-Large-Object":
		return true
	}
	return strings.HasPrefix(k, "X-Object-Meta-")
}

// remote sends one signed request for object name to the target
// container. body, when set, is the local object's response, streamed.
func (s *Syncer) remote(ctx context.Context, j job, method, name, timestamp string, h http.Header, body *http.Response) (*http.Response, error) {
	u, err := url.Parse(j.target.URL)
	if err != nil {
		return nil, fmt.Errorf("sync target %q: %w", j.target.URL, err)
	}
	// The signed path is quoted as the receiving proxy quotes the path it
	// got (Swift's req.path), so both ends sign the same bytes.
	path := Quote(u.Path) + "/" + Quote(name)
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = body.Body
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	req, err := http.NewRequestWithContext(rctx, method, u.Scheme+"://"+u.Host+path, rd)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("sync request: %w", err)
	}
	if body != nil {
		req.ContentLength = body.ContentLength
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	req.Header.Set("X-Timestamp", timestamp)
	if j.target.Realm != "" {
		nonce := newNonce()
		req.Header.Set("X-Container-Sync-Auth", AuthHeader(j.target.Realm, nonce,
			Signature(method, path, timestamp, nonce, j.target.RealmKey, j.state.SyncKey)))
	} else {
		req.Header.Set("X-Container-Sync-Key", j.state.SyncKey)
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s %s: %w", method, req.URL.Redacted(), err)
	}
	resp.Body = cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// newest opens the newest copy of an object on its primaries, as Swift's
// X-Newest read: every primary is asked for its timestamp and the newest
// one's body is read.
func (s *Syncer) newest(ctx context.Context, state server.SyncState, name string) (*http.Response, error) {
	objRing := s.cfg.ObjectRing
	if state.Policy != 0 {
		if objRing = s.cfg.PolicyRings[int(state.Policy)]; objRing == nil {
			return nil, fmt.Errorf("container %s/%s is in storage policy %d, which this node has no ring for", state.Account, state.Container, state.Policy)
		}
	}
	part, nodes := objRing.GetNodes(state.Account, state.Container, name)
	best, bestTS := -1, server.Timestamp{}
	for i, n := range nodes {
		resp, err := s.local(ctx, http.MethodHead, n, part, state, name)
		if err != nil {
			continue
		}
		drain(resp)
		if resp.StatusCode/100 != 2 {
			continue
		}
		if ts, err := server.ParseTimestamp(resp.Header.Get("X-Timestamp")); err == nil && (best < 0 || ts.Compare(bestTS) > 0) {
			best, bestTS = i, ts
		}
	}
	if best < 0 {
		return nil, fmt.Errorf("object %s/%s/%s not found on its primaries", state.Account, state.Container, name)
	}
	resp, err := s.local(ctx, http.MethodGet, nodes[best], part, state, name)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		drain(resp)
		return nil, fmt.Errorf("read %s from %s: status %d", name, nodes[best], resp.StatusCode)
	}
	return resp, nil
}

func (s *Syncer) local(ctx context.Context, method string, n ring.Device, part int, state server.SyncState, name string) (*http.Response, error) {
	p := "/" + n.Name + "/" + strconv.Itoa(part) + "/" + state.Account + "/" + state.Container + "/" + name
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	req, err := http.NewRequestWithContext(rctx, method, (&url.URL{Scheme: "http", Host: n.Host(), Path: p}).String(), http.NoBody)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("object request: %w", err)
	}
	req.Header.Set("X-Backend-Storage-Policy-Index", strconv.FormatInt(state.Policy, 10))
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s %s: %w", method, n, err)
	}
	resp.Body = cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelOnClose ends a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
