package proxy

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
)

// rings are the rings a proxy places requests with: account, container,
// and one object ring per storage policy.
type rings struct {
	account, container *ring.Ring
	object             *ring.Ring         // policy 0's, objects[0]
	objects            map[int]*ring.Ring // by policy index
}

func loadRings(cfg Config) (rings, error) {
	hp := ring.HashPath{Prefix: cfg.HashPathPrefix, Suffix: cfg.HashPathSuffix}
	var rs rings
	var err error
	if rs.account, err = ring.Load(cfg.AccountRing, hp); err != nil {
		return rs, fmt.Errorf("object proxy: account ring: %w", err)
	}
	if rs.container, err = ring.Load(cfg.ContainerRing, hp); err != nil {
		return rs, fmt.Errorf("object proxy: container ring: %w", err)
	}
	// Policy N's ring sits beside policy 0's as object-N.ring.gz, Swift's
	// layout of a swift_dir.
	rs.objects = map[int]*ring.Ring{}
	for _, pol := range cfg.Policies.All() {
		path := cfg.ObjectRing
		if pol.Index != 0 {
			path = filepath.Join(filepath.Dir(cfg.ObjectRing), policy.RingFile(pol.Index))
		}
		r, err := ring.Load(path, hp)
		if err != nil {
			return rs, fmt.Errorf("object proxy: object ring of storage policy %d (%s): %w", pol.Index, pol.Name, err)
		}
		rs.objects[pol.Index] = r
	}
	rs.object = rs.objects[0]
	return rs, nil
}

// reloadLoop re-reads changed ring files until stop closes, so a ring
// pushed by the operator takes effect without a restart. A ring that fails
// to load is logged and the previous one kept.
func (p *Proxy) reloadLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(p.cfg.RingCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.reloadRings()
		}
	}
}

func (p *Proxy) reloadRings() {
	all := []*ring.Ring{p.rings.account, p.rings.container}
	for _, pol := range p.cfg.Policies.All() {
		all = append(all, p.rings.objects[pol.Index])
	}
	for _, r := range all {
		changed, err := r.Reload()
		switch {
		case err != nil:
			p.log.Error("ring reload failed; keeping the loaded ring", "ring", r.Path(), "err", err)
		case changed:
			p.log.Info("ring reloaded", "ring", r.Path(), "build_version", r.BuildVersion())
		}
	}
}

// objectPlace places an object with the ring of its container's storage
// policy. With more than one policy that takes the container's info
// (cached, as Swift's proxy keeps it in memcache); an object of a
// container that does not exist is looked for in policy 0, as Swift does,
// and found missing.
func (p *Proxy) objectPlace(q *request, account, container, object string) (placement, error) {
	idx := 0
	if p.cfg.Policies.Len() > 1 {
		ci, err := p.containerInfo(q, account, container)
		if err != nil {
			return placement{}, err
		}
		if ci.exists {
			pol, err := p.cfg.Policies.FromHeader(ci.header.Get("X-Backend-Storage-Policy-Index"))
			if err != nil {
				// The container servers know a policy this proxy was not
				// given: its configuration lags the cluster's.
				p.log.Error("container in an unknown storage policy", "account", account, "container", container, "err", err)
				return placement{}, errStatus(http.StatusServiceUnavailable)
			}
			idx = pol.Index
		}
	}
	pl := place(p.rings.objects[idx], account, container, object)
	pl.policy = strconv.Itoa(idx)
	return pl, nil
}
