package replicator

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/server"
)

// mergeBatch bounds the rows of one merge request.
const mergeBatch = 1000

// Databases replicates the account or container databases of this node's
// devices.
type Databases struct {
	cfg  Config
	kind string
}

// NewDatabases returns the replicator of kind (server.KindAccount or
// server.KindContainer) for cfg (that kind's ring and this node's server
// address for it).
func NewDatabases(kind string, cfg Config) (*Databases, error) {
	if kind != server.KindAccount && kind != server.KindContainer {
		return nil, fmt.Errorf("replicator: unknown database kind %q", kind)
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c.Logger = c.Logger.With("replicator", kind)
	return &Databases{cfg: c, kind: kind}, nil
}

// Run replicates every Interval until ctx ends.
func (d *Databases) Run(ctx context.Context) { run(ctx, &d.cfg, d.kind, d.ReplicateOnce) }

// ReplicateOnce makes one pass over every local database.
func (d *Databases) ReplicateOnce(ctx context.Context) Stats {
	var st Stats
	for _, dev := range localDevices(&d.cfg) {
		dbs, err := server.ListDBs(dev.path, d.kind)
		if err != nil {
			d.cfg.Logger.Error("list databases", "device", dev.Name, "err", err)
			continue
		}
		for _, f := range dbs {
			if ctx.Err() != nil {
				return st
			}
			if f.Partition >= d.cfg.Ring.PartitionCount() {
				continue
			}
			st.Checked++
			if err := d.database(ctx, dev, f, &st); err != nil {
				d.cfg.Logger.Error("replicate database", "db", f.Path, "err", err)
			}
		}
	}
	return st
}

// database brings every peer of one database in step with the local copy
// and removes a handoff copy once all primaries have its rows.
func (d *Databases) database(ctx context.Context, dev localDevice, f server.DBFile, st *Stats) error {
	db, err := server.OpenDB(f.Path)
	if err != nil {
		return err
	}
	defer db.Close()
	cutoff := time.Now().Add(-d.cfg.ReclaimAge)
	if n, err := server.ReclaimDBRows(ctx, db, d.kind, cutoff); err != nil {
		d.cfg.Logger.Warn("reclaim deleted rows", "db", f.Path, "err", err)
	} else {
		st.Reclaimed += n
	}
	if gone, err := server.DBReclaimable(ctx, db, d.kind, cutoff); err != nil {
		return err
	} else if gone {
		db.Close()
		if err := server.RemoveDB(f.Path); err != nil {
			return err
		}
		st.ReclaimedDBs++
		d.cfg.Logger.Info("deleted database reclaimed", "db", f.Path)
		return nil
	}
	info, err := server.ReadDBInfo(ctx, db, d.kind)
	if err != nil {
		return err
	}
	targets, primary := peers(d.cfg.Ring, f.Partition, dev.ID)
	synced := true
	for _, t := range targets {
		n, err := d.push(ctx, db, info, f.Partition, t)
		st.Pushed += n
		if err != nil {
			st.Failed++
			synced = false
			d.cfg.Logger.Warn("replicate database", "db", f.Path, "peer", t.String(), "err", err)
		}
	}
	if primary || !synced {
		return nil
	}
	// Rows merged here while we pushed stay for the next pass.
	if now, err := server.ReadDBInfo(ctx, db, d.kind); err != nil || !maps.Equal(now.Buckets, info.Buckets) {
		return err
	}
	db.Close()
	if err := server.RemoveDB(f.Path); err != nil {
		return err
	}
	st.Removed++
	d.cfg.Logger.Info("handoff database moved to its primaries", "db", f.Path)
	return nil
}

// push sends peer the stat row when it differs and the rows of every
// bucket whose hash differs; it returns how many rows it sent.
func (d *Databases) push(ctx context.Context, db *sql.DB, info server.DBInfo, part int, peer ring.Device) (int, error) {
	url := peerURL(peer, part, d.names(info)...)
	var remote server.ReplicateHashes
	if err := d.replicate(ctx, url, server.ReplicateRequest{Op: "hashes"}, &remote); err != nil {
		return 0, err
	}
	var diff []string
	for b, h := range info.Buckets {
		if remote.Info.Buckets[b] != h {
			diff = append(diff, b)
		}
	}
	statSame := remote.Exists && remote.Info.Put == info.Put && remote.Info.Delete == info.Delete &&
		remote.Info.StatusChanged == info.StatusChanged && maps.Equal(remote.Info.Metadata, info.Metadata)
	if len(diff) == 0 && statSame {
		return 0, nil
	}
	var rows []server.DBRow
	if len(diff) > 0 {
		var err error
		if rows, err = server.ReadDBRows(ctx, db, d.kind, diff); err != nil {
			return 0, err
		}
	}
	sent := 0
	stat := info
	stat.Buckets = nil
	for first := true; first || len(rows) > 0; first = false {
		batch := rows[:min(len(rows), mergeBatch)]
		rows = rows[len(batch):]
		if err := d.replicate(ctx, url, server.ReplicateRequest{Op: "merge", Info: stat, Rows: batch}, nil); err != nil {
			return sent, err
		}
		sent += len(batch)
	}
	return sent, nil
}

func (d *Databases) names(info server.DBInfo) []string {
	if d.kind == server.KindAccount {
		return []string{info.Account}
	}
	return []string{info.Account, info.Container}
}

// replicate sends one REPLICATE request and decodes the answer into out
// (when not nil).
func (d *Databases) replicate(ctx context.Context, url string, body server.ReplicateRequest, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode replication request: %w", err)
	}
	req, err := http.NewRequest(server.MethodReplicate, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	_, answer, err := do(ctx, &d.cfg, req)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", req.Method, url, err)
	}
	return nil
}
