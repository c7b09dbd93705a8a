// Package replicator keeps the replicas of a Swift cluster in step: the
// object replicator and the account and container (database) replicators
// of internal/objectstore/server's replication protocol (see
// server/replicate.go and server/replicate_db.go for the wire format).
//
// Each runs on a storage node over the node's own devices and only ever
// pushes: a replica sends what its peers lack, and the peers' replicators
// send the rest back, so every pair converges within a pass of each side.
// A partition found on a device that is not one of its primaries (a
// handoff, written while a primary was down, or left behind by a ring
// change) is pushed to all primaries and removed locally once every
// primary has accepted everything.
//
// Run loops on an interval; ReplicateOnce runs a single pass (tests,
// `nimbus storage --once` style tooling).
package replicator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/server"
)

// Config configures a replicator of one ring on one node.
type Config struct {
	// DevicesRoot holds the node's device directories.
	DevicesRoot string
	// Ring places partitions; it may be reloaded underneath.
	Ring *ring.Ring
	// Policy is the storage policy an object replicator works on (its
	// Ring is that policy's); databases ignore it.
	Policy int
	// LocalHost is the ip:port the ring gives this node's server for the
	// ring (object, container or account): ring devices with this address
	// whose directory exists under DevicesRoot are replicated from here.
	LocalHost string
	// Interval is the pause between passes of Run (Swift's 30 s).
	Interval time.Duration
	// ReclaimAge is how long object tombstones and deleted database rows
	// live (7 days).
	ReclaimAge time.Duration
	// Timeout bounds one request to a peer.
	Timeout time.Duration
	// Client talks to peers.
	Client *http.Client
	// Logger receives operational logs.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.DevicesRoot == "" || c.Ring == nil || c.LocalHost == "" {
		return c, errors.New("replicator config: devices root, ring and local host are required")
	}
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.ReclaimAge <= 0 {
		c.ReclaimAge = 7 * 24 * time.Hour
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.Client == nil {
		c.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second}}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Stats counts what one pass did.
type Stats struct {
	// Partitions (object) or databases (account, container) looked at.
	Checked int
	// Pushed counts files (object) or rows (databases) sent to peers.
	Pushed int
	// Removed counts handoff partitions or databases deleted after they
	// reached every primary.
	Removed int
	// Failed counts peers that could not be brought in step.
	Failed int
	// Reclaimed counts deleted database rows removed after ReclaimAge,
	// ReclaimedDBs deleted, empty databases.
	Reclaimed, ReclaimedDBs int
}

// localDevice is a ring device on this node.
type localDevice struct {
	ring.Device
	path string
}

// localDevices lists the ring's devices served from this node.
func localDevices(cfg *Config) []localDevice {
	var out []localDevice
	for _, d := range cfg.Ring.Devices() {
		if d.Host() != cfg.LocalHost {
			continue
		}
		p := filepath.Join(cfg.DevicesRoot, d.Name)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			out = append(out, localDevice{Device: d, path: p})
		}
	}
	return out
}

// peers returns the devices a partition on dev is pushed to: the other
// primaries, or all of them when dev is a handoff.
func peers(r *ring.Ring, part, devID int) (targets []ring.Device, primary bool) {
	for _, d := range r.GetPartNodes(part) {
		if d.ID == devID {
			primary = true
			continue
		}
		targets = append(targets, d)
	}
	return targets, primary
}

// run calls pass every interval until ctx ends.
func run(ctx context.Context, cfg *Config, name string, pass func(context.Context) Stats) {
	server.RunEvery(ctx, cfg.Interval, func(ctx context.Context) {
		start := time.Now()
		st := pass(ctx)
		cfg.Logger.Debug("replication pass", "replicator", name, "checked", st.Checked, "pushed", st.Pushed,
			"removed", st.Removed, "failed", st.Failed, "took", time.Since(start).String())
	})
}

// peerURL is http://<device host>/<device>/<partition>[/<names>...] with
// every name escaped.
func peerURL(d ring.Device, part int, names ...string) string {
	p := "/" + d.Name + "/" + strconv.Itoa(part)
	for _, n := range names {
		p += "/" + n
	}
	return (&url.URL{Scheme: "http", Host: d.Host(), Path: p}).String()
}

// do sends one request to a peer and returns the body of a 2xx answer
// (and the status); other statuses in ok are accepted with no body.
func do(ctx context.Context, cfg *Config, req *http.Request, ok ...int) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	resp, err := cfg.Client.Do(req.WithContext(ctx))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: read answer: %w", req.Method, req.URL, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, body, nil
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			return resp.StatusCode, nil, nil
		}
	}
	return resp.StatusCode, nil, fmt.Errorf("%s %s: status %d", req.Method, req.URL, resp.StatusCode)
}
