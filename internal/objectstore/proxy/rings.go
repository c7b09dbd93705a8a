package proxy

import (
	"fmt"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
)

// rings are the three rings a proxy places requests with.
type rings struct {
	account, container, object *ring.Ring
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
	if rs.object, err = ring.Load(cfg.ObjectRing, hp); err != nil {
		return rs, fmt.Errorf("object proxy: object ring: %w", err)
	}
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
	for _, r := range []*ring.Ring{p.rings.account, p.rings.container, p.rings.object} {
		changed, err := r.Reload()
		switch {
		case err != nil:
			p.log.Error("ring reload failed; keeping the loaded ring", "ring", r.Path(), "err", err)
		case changed:
			p.log.Info("ring reloaded", "ring", r.Path(), "build_version", r.BuildVersion())
		}
	}
}
