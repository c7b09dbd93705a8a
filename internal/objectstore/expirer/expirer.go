// Package expirer deletes objects whose X-Delete-At has passed, as Swift's
// object-expirer does.
//
// The object servers queue every object written with X-Delete-At as a row
// "<delete-at>-<account>/<container>/<object>" in a container of the
// hidden .expiring_objects account (the proxy picks the container, see
// proxy/expirer.go). The expirer runs on every storage node and works
// through the queue containers whose databases that node holds: for each
// due row it deletes the object on its primaries with X-If-Delete-At (so an
// object re-written or given a new X-Delete-At since is left alone) and
// X-Timestamp set to the delete-at time (so a write after that time wins
// over the expiry), with container updates so listings drop it, and then
// deletes the queue row. Every replica of a queue container does the same
// work; the guards make repeats harmless, and no queue is stranded when a
// node is down.
package expirer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/direct"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/server"
)

// Account is the hidden account holding the expiry queue.
const Account = ".expiring_objects"

// Config configures the expirer of one storage node.
type Config struct {
	// DevicesRoot holds the node's device directories.
	DevicesRoot string
	// ContainerRing finds this node's queue containers and their
	// replicas; ObjectRing places the objects to delete.
	ContainerRing, ObjectRing *ring.Ring
	// PolicyRings are the object rings of the storage policies other
	// than 0, by index; an object is deleted with its container's.
	PolicyRings map[int]*ring.Ring
	// LocalHost is this node's container server as the ring knows it
	// (ip:port).
	LocalHost string
	// Interval is the pause between passes of Run (Swift's 300 s).
	Interval time.Duration
	// Timeout bounds one request to a storage server.
	Timeout time.Duration
	// Now is the clock (tests move it).
	Now func() time.Time
	// Client talks to the storage servers.
	Client *http.Client
	// Logger receives operational logs.
	Logger *slog.Logger
}

// Expirer deletes expired objects.
type Expirer struct {
	cfg    Config
	direct direct.Client
}

// Stats counts what one pass did.
type Stats struct {
	// Expired counts objects deleted (or found gone or changed).
	Expired int
	// Failed counts queue rows left for the next pass.
	Failed int
}

// New returns the expirer for cfg.
func New(cfg Config) (*Expirer, error) {
	if cfg.DevicesRoot == "" || cfg.ContainerRing == nil || cfg.ObjectRing == nil || cfg.LocalHost == "" {
		return nil, errors.New("expirer config: devices root, rings and local host are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With("daemon", "expirer")
	return &Expirer{cfg: cfg, direct: direct.Client{HTTP: cfg.Client, Timeout: cfg.Timeout}}, nil
}

// Run expires objects every Interval until ctx ends.
func (e *Expirer) Run(ctx context.Context) {
	server.RunEvery(ctx, e.cfg.Interval, func(ctx context.Context) {
		if st := e.ExpireOnce(ctx); st.Expired > 0 || st.Failed > 0 {
			e.cfg.Logger.Info("expirer pass", "expired", st.Expired, "failed", st.Failed)
		}
	})
}

// ExpireOnce works through every due row of the local queue containers.
func (e *Expirer) ExpireOnce(ctx context.Context) Stats {
	var st Stats
	server.EachLocalDB(ctx, e.cfg.ContainerRing, e.cfg.DevicesRoot, e.cfg.LocalHost, server.KindContainer, e.cfg.Logger,
		func(_ ring.Device, f server.DBFile) {
			if err := e.queue(ctx, f.Path, &st); err != nil {
				e.cfg.Logger.Error("expirer queue", "db", f.Path, "err", err)
			}
		})
	return st
}

// queue processes one container database if it is an expiry queue.
func (e *Expirer) queue(ctx context.Context, path string, st *Stats) error {
	db, err := server.OpenDB(path)
	if err != nil {
		return err
	}
	defer db.Close()
	acct, cont, err := server.ReadDBNames(ctx, db)
	if err != nil || acct != Account {
		return err
	}
	rows, err := server.ReadDBRows(ctx, db, server.KindContainer, nil)
	if err != nil {
		return err
	}
	now := e.cfg.Now().Unix()
	for _, r := range rows {
		if r.Deleted {
			continue
		}
		at, target, ok := parseRow(r.Name)
		if !ok || at > now {
			continue
		}
		if err := e.expire(ctx, at, target); err != nil {
			st.Failed++
			e.cfg.Logger.Warn("expire object", "object", r.Name, "err", err)
			continue
		}
		st.Expired++
		if err := e.dequeue(ctx, cont, r.Name); err != nil {
			e.cfg.Logger.Warn("remove expirer queue row; the next pass retries", "row", r.Name, "err", err)
		}
	}
	return nil
}

// parseRow splits "<delete-at>-<account>/<container>/<object>".
func parseRow(name string) (at int64, target [3]string, ok bool) {
	ts, rest, found := strings.Cut(name, "-")
	if !found {
		return 0, target, false
	}
	at, err := strconv.ParseInt(ts, 10, 64)
	parts := strings.SplitN(rest, "/", 3)
	if err != nil || len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return 0, target, false
	}
	return at, [3]string{parts[0], parts[1], parts[2]}, true
}

// expire deletes the object on its primaries; a majority answering
// deleted, gone (404), changed (412) or newer (409) is done, and
// replication brings the rest in step.
func (e *Expirer) expire(ctx context.Context, at int64, obj [3]string) error {
	pol := 0
	if len(e.cfg.PolicyRings) > 0 {
		var err error
		if pol, err = e.direct.ContainerPolicy(ctx, e.cfg.ContainerRing, obj[0], obj[1]); err != nil {
			return fmt.Errorf("delete %s/%s/%s: %w", obj[0], obj[1], obj[2], err)
		}
	}
	objRing := e.cfg.ObjectRing
	if pol != 0 {
		if objRing = e.cfg.PolicyRings[pol]; objRing == nil {
			return fmt.Errorf("delete %s/%s/%s: container in storage policy %d, which this node has no ring for", obj[0], obj[1], obj[2], pol)
		}
	}
	part, nodes := objRing.GetNodes(obj[0], obj[1], obj[2])
	cpart, cnodes := e.cfg.ContainerRing.GetNodes(obj[0], obj[1], "")
	ts := strconv.FormatInt(at, 10) + ".00000"
	return e.direct.Quorum(ctx, http.MethodDelete, nodes, part, obj[:], func(i int) http.Header {
		h := http.Header{}
		h.Set("X-Timestamp", ts)
		h.Set("X-If-Delete-At", strconv.FormatInt(at, 10))
		h.Set("X-Backend-Storage-Policy-Index", strconv.Itoa(pol))
		direct.SetUpdateTarget(h, "Container", cpart, cnodes, i)
		return h
	}, func(status int) bool {
		return status/100 == 2 || status == http.StatusNotFound || status == http.StatusPreconditionFailed || status == http.StatusConflict
	})
}

// dequeue deletes a queue row on every replica of its container.
func (e *Expirer) dequeue(ctx context.Context, cont, row string) error {
	part, nodes := e.cfg.ContainerRing.GetNodes(Account, cont, "")
	h := http.Header{}
	h.Set("X-Timestamp", server.TimestampNow())
	var errs []error
	for _, n := range nodes {
		r, err := e.direct.Do(ctx, http.MethodDelete, n, part, []string{Account, cont, row}, nil, h)
		if err == nil && r.Status/100 != 2 && r.Status != http.StatusNotFound {
			err = fmt.Errorf("%s: status %d", n.String(), r.Status)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
