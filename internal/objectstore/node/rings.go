package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
)

// LocalRings describes the rings of a one-machine cluster.
type LocalRings struct {
	// Dir receives the builder and ring files.
	Dir string
	// IP and the three ports are where the node's servers are reached.
	IP                                     string
	ObjectPort, ContainerPort, AccountPort int
	// Devices are the device directory names, one zone each, so that the
	// replicas of a partition land on different devices.
	Devices []string
	// PartPower and Replicas size the rings.
	PartPower, Replicas int
	// Policies get one object ring each (object.ring.gz for 0,
	// object-N.ring.gz for N), with the policy's replica count when it
	// sets one. Empty: policy 0 only.
	Policies []policy.Policy
}

// EnsureLocalRings builds the account, container and per-policy object
// rings of a one-machine cluster with the ring builder, unless they exist.
// It is what `nimbus up` does on first start; later starts keep the rings
// (and so the placement of everything stored), and build only the rings
// of policies added since, so an upgraded cloud gains policy 1's ring
// while policy 0's data stays where it is.
func EnsureLocalRings(lr LocalRings) error {
	if err := os.MkdirAll(lr.Dir, 0o750); err != nil {
		return fmt.Errorf("ring dir: %w", err)
	}
	type ringSpec struct {
		name           string
		port, replicas int
	}
	specs := []ringSpec{{"container", lr.ContainerPort, lr.Replicas}, {"account", lr.AccountPort, lr.Replicas}}
	pols := lr.Policies
	if len(pols) == 0 {
		pols = []policy.Policy{{Index: 0}}
	}
	for _, p := range pols {
		replicas := lr.Replicas
		if p.Replicas > 0 {
			replicas = p.Replicas
		}
		specs = append(specs, ringSpec{strings.TrimSuffix(policy.RingFile(p.Index), ".ring.gz"), lr.ObjectPort, replicas})
	}
	for _, k := range specs {
		ringPath := filepath.Join(lr.Dir, k.name+".ring.gz")
		if _, err := os.Stat(ringPath); err == nil {
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s ring: %w", k.name, err)
		}
		b, err := ring.NewBuilder(lr.PartPower, k.replicas, 1)
		if err != nil {
			return fmt.Errorf("%s ring: %w", k.name, err)
		}
		for i, dev := range lr.Devices {
			if _, err := b.AddDevice(ring.Device{Region: 1, Zone: i + 1, IP: lr.IP, Port: k.port, Name: dev, Weight: 100}); err != nil {
				return fmt.Errorf("%s ring: add %s: %w", k.name, dev, err)
			}
		}
		if _, err := b.Rebalance(); err != nil {
			return fmt.Errorf("%s ring: rebalance: %w", k.name, err)
		}
		if err := b.Save(filepath.Join(lr.Dir, k.name+".builder")); err != nil {
			return fmt.Errorf("%s ring: %w", k.name, err)
		}
		if err := b.WriteRing(ringPath); err != nil {
			return fmt.Errorf("%s ring: %w", k.name, err)
		}
	}
	return nil
}
