package server

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// pendingUpdate is one queued container (or account) update: what to send and
// where. It is stored as JSON in async_pending.
type pendingUpdate struct {
	Method    string            `json:"method"`
	Host      string            `json:"host"`
	Device    string            `json:"device"`
	Partition string            `json:"partition"`
	Account   string            `json:"account"`
	Container string            `json:"container"`
	Object    string            `json:"object,omitempty"`
	Headers   map[string]string `json:"headers"`
	Queued    int64             `json:"queued"` // unix seconds
}

// url is where the update goes on the target server.
func (u pendingUpdate) url() string {
	p := "/" + u.Device + "/" + u.Partition + "/" + u.Account + "/" + u.Container
	if u.Object != "" {
		p += "/" + u.Object
	}
	return (&url.URL{Scheme: "http", Host: u.Host, Path: p}).String()
}

// send delivers u; any non-2xx answer is a failure to retry later.
func sendUpdate(ctx context.Context, cfg *Config, u pendingUpdate) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.UpdateTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, u.Method, u.url(), http.NoBody)
	if err != nil {
		return fmt.Errorf("build update to %s: %w", u.Host, err)
	}
	for k, v := range u.Headers {
		req.Header.Set(k, v)
	}
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("update %s %s: %w", u.Method, u.url(), err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64*1024))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("update %s %s: status %d", u.Method, u.url(), resp.StatusCode)
	}
	return nil
}

// containerUpdate tells the container servers named in the request about a
// change to an object; each failed target is queued in async_pending so the
// write is never lost from the listing. It never fails the client request:
// the object is durable already.
func (s *ObjectServer) containerUpdate(r *http.Request, t target, method string, ts Timestamp, extra map[string]string) {
	s.sendUpdates(r, t, ts, "X-Container", method, t.rp.Account, t.rp.Container, t.rp.Object, extra)
}

// expiringObjectsAccount is the hidden account whose containers queue
// objects for the expirer, as in Swift.
const expiringObjectsAccount = ".expiring_objects"

// deleteAtUpdate queues an object with X-Delete-At for the expirer: a row
// "<delete-at>-<account>/<container>/<object>" in the .expiring_objects
// container the proxy names in X-Delete-At-Container, on the servers in
// X-Delete-At-Host/-Partition/-Device. Stale rows left by a later change
// of X-Delete-At are harmless: the expirer's DELETE carries
// X-If-Delete-At and gets 412.
func (s *ObjectServer) deleteAtUpdate(r *http.Request, t target, ts Timestamp, deleteAt string) {
	if deleteAt == "" {
		return
	}
	cont := r.Header.Get("X-Delete-At-Container")
	if cont == "" || validName(1, cont) != nil {
		return
	}
	obj := deleteAt + "-" + t.rp.Account + "/" + t.rp.Container + "/" + t.rp.Object
	s.sendUpdates(r, t, ts, "X-Delete-At", http.MethodPut, expiringObjectsAccount, cont, obj, map[string]string{
		"X-Size": "0", "X-Content-Type": "text/plain", "X-Etag": "d41d8cd98f00b204e9800998ecf8427e",
	})
}

// sendUpdates sends one update per server listed in the <prefix>-Host,
// -Partition and -Device request headers (comma-separated, as Swift's proxy
// sends them), queueing each failure in async_pending.
func (s *ObjectServer) sendUpdates(r *http.Request, t target, ts Timestamp, prefix, method, account, container, object string, extra map[string]string) {
	hosts := splitList(r.Header.Get(prefix + "-Host"))
	parts := splitList(r.Header.Get(prefix + "-Partition"))
	devs := splitList(r.Header.Get(prefix + "-Device"))
	if len(hosts) == 0 {
		return
	}
	if len(parts) == 1 && len(hosts) > 1 {
		for len(parts) < len(hosts) {
			parts = append(parts, parts[0])
		}
	}
	if len(parts) != len(hosts) || len(devs) != len(hosts) {
		s.log.Error("update headers disagree", "prefix", prefix, "hosts", hosts, "partitions", parts, "devices", devs, "path", r.URL.Path)
		return
	}
	headers := map[string]string{"X-Timestamp": ts.Internal()}
	if v := r.Header.Get("X-Trans-Id"); v != "" {
		headers["X-Trans-Id"] = v
	}
	headers["X-Backend-Storage-Policy-Index"] = strconv.Itoa(t.policy)
	for k, v := range extra {
		headers[k] = v
	}
	for i := range hosts {
		u := pendingUpdate{
			Method: method, Host: hosts[i], Device: devs[i], Partition: parts[i],
			Account: account, Container: container, Object: object,
			Headers: headers, Queued: time.Now().Unix(),
		}
		if validDevice(u.Device) != nil || validPartition(u.Partition) != nil {
			s.log.Error("bad device or partition in update headers", "prefix", prefix, "device", u.Device, "partition", u.Partition)
			continue
		}
		if err := sendUpdate(r.Context(), &s.cfg, u); err != nil {
			s.log.Warn("update failed; queued", "prefix", prefix, "err", err)
			if err := savePending(t.devPath, t.policy, t.hash, ts, u); err != nil {
				s.log.Error("queue update", "err", err)
			}
		}
	}
}

// savePending writes u durably to
// <dev>/async_pending[-N]/<suffix>/<hash>-<ts>-<target>, in the dir of
// the object's policy as Swift keeps them.
func savePending(devPath string, pol int, hash string, ts Timestamp, u pendingUpdate) error {
	b, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encode async pending: %w", err)
	}
	tgt := md5.Sum([]byte(u.Host + "/" + u.Device + "/" + u.Partition + "/" + u.Account + "/" + u.Container))
	name := hash + "-" + ts.Internal() + "-" + hex.EncodeToString(tgt[:4])
	dir := filepath.Join(devPath, policy.AsyncPendingDir(pol), hash[len(hash)-3:])
	if err := writeFileAtomic(devPath, dir, name, b, nil); err != nil {
		return fmt.Errorf("write async pending: %w", err)
	}
	return nil
}

// UpdaterStats counts one updater pass.
type UpdaterStats struct {
	Sent, Failed, Dropped, TmpRemoved int
}

// RunUpdater replays queued container updates every UpdaterInterval until
// ctx ends, and removes tmp files abandoned by crashed writes.
func (s *ObjectServer) RunUpdater(ctx context.Context) {
	for {
		st := s.UpdateOnce(ctx)
		if st.Sent+st.Failed+st.Dropped+st.TmpRemoved > 0 {
			s.log.Info("object updater pass", "sent", st.Sent, "failed", st.Failed, "dropped", st.Dropped, "tmp_removed", st.TmpRemoved)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.UpdaterInterval):
		}
	}
}

// UpdateOnce makes one pass over every device's async_pending dirs (one
// per storage policy): each
// update accepted by its container server is removed; the rest stay for the
// next pass until ReclaimAge, after which they are dropped (the container
// replicators own consistency from then on).
func (s *ObjectServer) UpdateOnce(ctx context.Context) UpdaterStats {
	var st UpdaterStats
	for _, dev := range s.devices() {
		st.TmpRemoved += cleanTmp(filepath.Join(dev, tmpDir), s.cfg.TmpMaxAge)
		for _, pol := range s.cfg.Policies.All() {
			if !s.replayPending(ctx, filepath.Join(dev, policy.AsyncPendingDir(pol.Index)), &st) {
				return st
			}
		}
	}
	return st
}

// replayPending sends the updates queued under root; false when ctx ended.
func (s *ObjectServer) replayPending(ctx context.Context, root string, st *UpdaterStats) bool {
	suffixes, _ := os.ReadDir(root)
	for _, sfx := range suffixes {
		sdir := filepath.Join(root, sfx.Name())
		ents, _ := os.ReadDir(sdir)
		for _, e := range ents {
			if ctx.Err() != nil {
				return false
			}
			p := filepath.Join(sdir, e.Name())
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			var u pendingUpdate
			if err := json.Unmarshal(b, &u); err != nil {
				s.log.Error("unreadable async pending removed", "file", p, "err", err)
				os.Remove(p)
				st.Dropped++
				continue
			}
			if err := sendUpdate(ctx, &s.cfg, u); err != nil {
				if time.Since(time.Unix(u.Queued, 0)) > s.cfg.ReclaimAge {
					os.Remove(p)
					st.Dropped++
					continue
				}
				st.Failed++
				continue
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("remove async pending", "file", p, "err", err)
			}
			st.Sent++
		}
		_ = os.Remove(sdir) // only when empty
	}
	return true
}

// devices lists usable device dirs under the root.
func (s *ObjectServer) devices() []string { return listDevices(&s.cfg) }

func listDevices(cfg *Config) []string {
	ents, err := os.ReadDir(cfg.DevicesRoot)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if p, err := devicePath(cfg, e.Name()); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// cleanTmp removes files older than maxAge from a tmp dir.
func cleanTmp(dir string, maxAge time.Duration) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < maxAge {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			n++
		}
	}
	return n
}
