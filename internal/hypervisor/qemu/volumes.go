package qemu

import (
	"context"
	"errors"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// AttachVolume implements hypervisor.Driver.
func (d *Driver) AttachVolume(ctx context.Context, uuid string, disk hypervisor.Disk) error {
	return fmt.Errorf("attach volume to %s: %w", uuid, errors.ErrUnsupported)
}

// DetachVolume implements hypervisor.Driver.
func (d *Driver) DetachVolume(ctx context.Context, uuid, volumeID string) error {
	return fmt.Errorf("detach volume from %s: %w", uuid, errors.ErrUnsupported)
}
