package qemu

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// changeableState is the state of a guest whose machine is about to
// change (disks, vCPUs, memory, NICs). A suspended guest is refused: its
// saved state would not match the changed machine it is restored into.
func (d *Driver) changeableState(ctx context.Context, op, uuid string) (hypervisor.Info, error) {
	info, err := d.getState(ctx, uuid)
	if err != nil {
		return info, fmt.Errorf("%s: %w", op, err)
	}
	if info.State == hypervisor.Suspended {
		return info, fmt.Errorf("%s %s: %w", op, uuid, &hypervisor.StateError{Op: op, State: info.State})
	}
	return info, nil
}

// stopForChange ends a guest's process before a change QEMU cannot make
// live (new vCPUs or memory, other disks): through ACPI first when
// timeout is positive, then by force. It reports whether the guest was
// running or paused, so the change can start it again.
func (d *Driver) stopForChange(ctx context.Context, op, uuid string, timeout time.Duration) (wasRunning bool, err error) {
	info, err := d.changeableState(ctx, op, uuid)
	if err != nil {
		return false, err
	}
	if info.PID == 0 {
		return false, nil
	}
	if timeout > 0 {
		clean, err := d.acpiShutdown(ctx, uuid, timeout)
		if err != nil {
			d.log.Warn("clean shutdown failed; forcing", "uuid", uuid, "op", op, "err", err)
		}
		if clean {
			return true, nil
		}
	}
	if err := d.stopProcess(ctx, uuid); err != nil {
		return true, fmt.Errorf("%s: %w", op, err)
	}
	return true, nil
}

// copyFile copies src to dst through a temporary file that is synced and
// renamed, so dst is either absent or complete.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
