// Package reaper empties deleted accounts, as Swift's account-reaper does.
//
// Deleting an account (a reseller admin's DELETE) only marks its
// database. The reaper on the node that holds the first replica of the
// account's partition finds such accounts and, once Delay has passed,
// deletes every object of every container on the objects' primaries
// (with the container updates that drop them from the listings) and
// then each container on its primaries (with the account update that
// drops it from the account). What fails is tried again on the next
// pass. Once the account holds no containers and its deletion is older
// than the reclaim age, the account replicator removes its database.
package reaper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/direct"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/server"
)

// Config configures the reaper of one storage node.
type Config struct {
	// DevicesRoot holds the node's device directories.
	DevicesRoot string
	// AccountRing finds the accounts this node reaps; ContainerRing and
	// ObjectRing (PolicyRings for policies other than 0, by index) place
	// what it deletes.
	AccountRing, ContainerRing, ObjectRing *ring.Ring
	PolicyRings                            map[int]*ring.Ring
	// LocalHost is this node's account server as the ring knows it
	// (ip:port).
	LocalHost string
	// Interval is the pause between passes (Swift's 3600 s).
	Interval time.Duration
	// Delay is how long a deleted account keeps its data before the
	// reaper starts (Swift's delay_reaping; 0 by default there too).
	Delay time.Duration
	// Timeout bounds one request to a storage server.
	Timeout time.Duration
	// Now is the clock (tests move it).
	Now func() time.Time
	// Client talks to the storage servers.
	Client *http.Client
	// Logger receives operational logs.
	Logger *slog.Logger
}

// Reaper empties deleted accounts.
type Reaper struct {
	cfg    Config
	direct direct.Client
}

// Stats counts what one pass did.
type Stats struct {
	// Accounts counts deleted accounts worked on (that still listed
	// containers).
	Accounts int
	// Containers and Objects count what was deleted (or found gone).
	Containers, Objects int
	// Failed counts containers left for the next pass.
	Failed int
}

// listPage is how many object names one listing request asks for.
const listPage = 1000

// New returns the reaper for cfg.
func New(cfg Config) (*Reaper, error) {
	if cfg.DevicesRoot == "" || cfg.AccountRing == nil || cfg.ContainerRing == nil || cfg.ObjectRing == nil || cfg.LocalHost == "" {
		return nil, errors.New("reaper config: devices root, rings and local host are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With("daemon", "reaper")
	return &Reaper{cfg: cfg, direct: direct.Client{HTTP: cfg.Client, Timeout: cfg.Timeout}}, nil
}

// Run reaps every Interval until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	server.RunEvery(ctx, r.cfg.Interval, func(ctx context.Context) {
		if st := r.ReapOnce(ctx); st.Containers > 0 || st.Failed > 0 {
			r.cfg.Logger.Info("reaper pass", "accounts", st.Accounts, "containers", st.Containers,
				"objects", st.Objects, "failed", st.Failed)
		}
	})
}

// ReapOnce works on every deleted account whose first replica is here.
func (r *Reaper) ReapOnce(ctx context.Context) Stats {
	var st Stats
	server.EachLocalDB(ctx, r.cfg.AccountRing, r.cfg.DevicesRoot, r.cfg.LocalHost, server.KindAccount, r.cfg.Logger,
		func(dev ring.Device, f server.DBFile) {
			// One reaper per account: the first primary's. A handoff
			// copy, or another replica, leaves it to that one.
			if nodes := r.cfg.AccountRing.GetPartNodes(f.Partition); len(nodes) == 0 || nodes[0].ID != dev.ID {
				return
			}
			if err := r.account(ctx, f.Path, &st); err != nil {
				r.cfg.Logger.Error("reap account", "db", f.Path, "err", err)
			}
		})
	return st
}

// account empties one account database's account if it is deleted and
// its delay has passed.
func (r *Reaper) account(ctx context.Context, path string, st *Stats) error {
	db, err := server.OpenDB(path)
	if err != nil {
		return err
	}
	defer db.Close()
	info, err := server.ReadDBInfo(ctx, db, server.KindAccount)
	if err != nil {
		return err
	}
	deletedAt, err := strconv.ParseFloat(info.Delete, 64)
	if info.Status != "DELETED" || err != nil || deletedAt <= 0 {
		return nil
	}
	if r.cfg.Now().Before(time.Unix(0, int64(deletedAt*1e9)).Add(r.cfg.Delay)) {
		return nil
	}
	rows, err := server.ReadDBRows(ctx, db, server.KindAccount, nil)
	if err != nil {
		return err
	}
	rows = slices.DeleteFunc(rows, func(row server.DBRow) bool { return row.Deleted })
	if len(rows) == 0 {
		return nil // emptied: the replicator removes it after the reclaim age
	}
	st.Accounts++
	for _, row := range rows {
		if err := r.container(ctx, info.Account, row.Name, st); err != nil {
			st.Failed++
			r.cfg.Logger.Warn("reap container; the next pass retries", "account", info.Account, "container", row.Name, "err", err)
			continue
		}
		st.Containers++
	}
	return nil
}

// container deletes every object of a container and then the container.
func (r *Reaper) container(ctx context.Context, account, container string, st *Stats) error {
	pol := 0
	if len(r.cfg.PolicyRings) > 0 {
		var err error
		if pol, err = r.direct.ContainerPolicy(ctx, r.cfg.ContainerRing, account, container); err != nil {
			return err
		}
	}
	objRing := r.cfg.ObjectRing
	if pol != 0 {
		if objRing = r.cfg.PolicyRings[pol]; objRing == nil {
			return fmt.Errorf("container in storage policy %d, which this node has no ring for", pol)
		}
	}
	cpart, cnodes := r.cfg.ContainerRing.GetNodes(account, container, "")
	marker := ""
	for {
		names, err := r.direct.ObjectNames(ctx, r.cfg.ContainerRing, account, container, marker, listPage)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			break
		}
		for _, name := range names {
			if err := r.deleteObject(ctx, objRing, pol, account, container, name, cpart, cnodes); err != nil {
				return err
			}
			st.Objects++
		}
		marker = names[len(names)-1]
	}
	apart, anodes := r.cfg.AccountRing.GetNodes(account, "", "")
	ts := server.TimestampNow()
	return r.direct.Quorum(ctx, http.MethodDelete, cnodes, cpart, []string{account, container}, func(i int) http.Header {
		h := http.Header{}
		h.Set("X-Timestamp", ts)
		direct.SetUpdateTarget(h, "Account", apart, anodes, i)
		return h
	}, func(status int) bool { return status/100 == 2 || status == http.StatusNotFound })
}

// deleteObject deletes one object on its primaries, each with the
// container update for the matching container replica.
func (r *Reaper) deleteObject(ctx context.Context, objRing *ring.Ring, pol int, account, container, name string, cpart int, cnodes []ring.Device) error {
	part, nodes := objRing.GetNodes(account, container, name)
	ts := server.TimestampNow()
	return r.direct.Quorum(ctx, http.MethodDelete, nodes, part, []string{account, container, name}, func(i int) http.Header {
		h := http.Header{}
		h.Set("X-Timestamp", ts)
		h.Set("X-Backend-Storage-Policy-Index", strconv.Itoa(pol))
		direct.SetUpdateTarget(h, "Container", cpart, cnodes, i)
		return h
	}, func(status int) bool { return status/100 == 2 || status == http.StatusNotFound })
}
