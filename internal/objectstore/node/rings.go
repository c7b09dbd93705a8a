package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
}

// EnsureLocalRings builds the account, container and object rings of a
// one-machine cluster with the ring builder, unless they exist. It is
// what `nimbus up` does on first start; later starts keep the rings (and
// so the placement of everything stored).
func EnsureLocalRings(lr LocalRings) error {
	if err := os.MkdirAll(lr.Dir, 0o750); err != nil {
		return fmt.Errorf("ring dir: %w", err)
	}
	for _, k := range []struct {
		name string
		port int
	}{{"object", lr.ObjectPort}, {"container", lr.ContainerPort}, {"account", lr.AccountPort}} {
		ringPath := filepath.Join(lr.Dir, k.name+".ring.gz")
		if _, err := os.Stat(ringPath); err == nil {
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s ring: %w", k.name, err)
		}
		b, err := ring.NewBuilder(lr.PartPower, lr.Replicas, 1)
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
