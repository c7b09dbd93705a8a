package replicator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/server"
)

// Objects replicates the object partitions of this node's devices.
type Objects struct {
	cfg Config
}

// NewObjects returns the object replicator for cfg (one storage policy's
// object ring, the policy's index and this node's object server address).
// A node runs one per policy, as Swift's replicator walks each policy's
// objects-N dir with its ring.
func NewObjects(cfg Config) (*Objects, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c.Logger = c.Logger.With("replicator", "object", "policy", c.Policy)
	return &Objects{cfg: c}, nil
}

// Run replicates every Interval until ctx ends.
func (o *Objects) Run(ctx context.Context) { run(ctx, &o.cfg, "object", o.ReplicateOnce) }

// ReplicateOnce makes one pass over every local partition.
func (o *Objects) ReplicateOnce(ctx context.Context) Stats {
	var st Stats
	for _, dev := range localDevices(&o.cfg) {
		parts, err := server.ObjectPartitions(dev.path, o.cfg.Policy)
		if err != nil {
			o.cfg.Logger.Error("list partitions", "device", dev.Name, "err", err)
			continue
		}
		for _, part := range parts {
			if ctx.Err() != nil {
				return st
			}
			if part >= o.cfg.Ring.PartitionCount() {
				continue
			}
			st.Checked++
			o.partition(ctx, dev, part, &st)
		}
	}
	return st
}

// partition brings every peer of one partition in step with dev's copy
// and removes a handoff copy once all primaries have it.
func (o *Objects) partition(ctx context.Context, dev localDevice, part int, st *Stats) {
	local, err := server.ObjectSuffixHashes(dev.path, o.cfg.Policy, part, o.cfg.ReclaimAge)
	if err != nil {
		o.cfg.Logger.Error("hash partition", "device", dev.Name, "partition", part, "err", err)
		return
	}
	targets, primary := peers(o.cfg.Ring, part, dev.ID)
	synced := true
	for _, t := range targets {
		n, err := o.push(ctx, dev, part, local, t)
		st.Pushed += n
		if err != nil {
			st.Failed++
			synced = false
			o.cfg.Logger.Warn("replicate partition", "device", dev.Name, "partition", part, "peer", t.String(), "err", err)
		}
	}
	if primary || !synced {
		return
	}
	// A write may have landed here while we pushed; keep the partition
	// for the next pass unless it is unchanged.
	if now, err := server.ObjectSuffixHashes(dev.path, o.cfg.Policy, part, o.cfg.ReclaimAge); err != nil || !maps.Equal(now, local) {
		return
	}
	if err := server.RemoveObjectPartition(dev.path, o.cfg.Policy, part); err != nil {
		o.cfg.Logger.Error("remove handoff partition", "device", dev.Name, "partition", part, "err", err)
		return
	}
	st.Removed++
	o.cfg.Logger.Info("handoff partition moved to its primaries", "device", dev.Name, "partition", part)
}

// push sends peer the files of the suffixes whose hashes differ from
// dev's, and returns how many files it sent. A 409 means the peer holds
// something newer, which is in step as far as this copy is concerned.
func (o *Objects) push(ctx context.Context, dev localDevice, part int, local map[string]string, peer ring.Device) (int, error) {
	remote := map[string]string{}
	if err := o.getJSON(ctx, peerURL(peer, part), &remote); err != nil {
		return 0, err
	}
	var diff []string
	for suf, h := range local {
		if remote[suf] != h {
			diff = append(diff, suf)
		}
	}
	if len(diff) == 0 {
		return 0, nil
	}
	slices.Sort(diff)
	remoteFiles := map[string][]string{}
	if err := o.getJSON(ctx, peerURL(peer, part, strings.Join(diff, "-")), &remoteFiles); err != nil {
		return 0, err
	}
	localFiles, err := server.ObjectSuffixFiles(dev.path, o.cfg.Policy, part, diff)
	if err != nil {
		return 0, err
	}
	sent := 0
	for hash, files := range localFiles {
		// Files come .data (or .ts) first, so a .meta always follows the
		// .data it belongs to.
		for _, f := range files {
			if slices.Contains(remoteFiles[hash], f) {
				continue
			}
			if err := o.sendFile(ctx, dev, part, hash, f, peer); err != nil {
				return sent, err
			}
			sent++
		}
	}
	return sent, nil
}

// sendFile pushes one file with SYNC.
func (o *Objects) sendFile(ctx context.Context, dev localDevice, part int, hash, file string, peer ring.Device) error {
	f, err := server.OpenObjectFile(dev.path, o.cfg.Policy, part, hash, file)
	if err != nil {
		return err
	}
	defer f.Close()
	md, err := json.Marshal(f.Metadata)
	if err != nil {
		return fmt.Errorf("encode metadata of %s/%s: %w", hash, file, err)
	}
	req, err := http.NewRequest(server.MethodSync, peerURL(peer, part, hash, file), f.Body)
	if err != nil {
		return err
	}
	req.ContentLength = f.Size
	if f.Size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set(server.SyncMetadataHeader, base64.StdEncoding.EncodeToString(md))
	o.setPolicy(req)
	_, _, err = do(ctx, &o.cfg, req, http.StatusConflict)
	return err
}

// setPolicy names the replicator's policy to the peer, which keeps each
// policy's partitions apart.
func (o *Objects) setPolicy(req *http.Request) {
	req.Header.Set("X-Backend-Storage-Policy-Index", strconv.Itoa(o.cfg.Policy))
}

// getJSON sends REPLICATE to url and decodes the answer into out.
func (o *Objects) getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequest(server.MethodReplicate, url, http.NoBody)
	if err != nil {
		return err
	}
	o.setPolicy(req)
	_, body, err := do(ctx, &o.cfg, req)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", req.Method, url, err)
	}
	return nil
}
