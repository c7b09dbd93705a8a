package computeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// revert is a stack of undo steps: a multi-step change registers each
// step's undo, and a success disarms them all.
type revert struct {
	undo []func(context.Context) error
}

func (r *revert) add(f func(context.Context) error) { r.undo = append(r.undo, f) }

// run undoes every step, newest first, and returns what failed.
func (r *revert) run(ctx context.Context) error {
	var errs []error
	for i := len(r.undo) - 1; i >= 0; i-- {
		errs = append(errs, r.undo[i](ctx))
	}
	r.undo = nil
	return errors.Join(errs...)
}

// buildError is a failed build: its fault and whether another host might
// do better.
type buildError struct {
	err        error
	code       int
	reschedule bool
}

func (e *buildError) Error() string { return e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }

// build makes the guest: image, ports and taps, config drive, spawn.
func (a *Agent) build(ctx context.Context, log *slog.Logger, cmd compute.Command) compute.InstanceReport {
	inst := cmd.Instance
	// A redelivered build whose guest already runs is reported, not
	// started again (Spawn answers ErrExists), and its ports are looked
	// up, not created; if that fails, nothing of the running guest is
	// undone.
	cur, err := a.cfg.Driver.GetState(ctx, inst.ID)
	adopting := err == nil && cur.State == hypervisor.Running
	var rv revert
	info, ports, nets, err := a.spawn(ctx, inst, cmd.ImageID, &rv)
	if err != nil {
		undo := context.WithoutCancel(ctx) // the command's context may be what ended
		switch {
		case adopting:
		case cmd.Op == compute.OpBuild:
			if uerr := rv.run(undo); uerr != nil {
				log.Error("unwind failed build", "err", uerr)
			}
		default:
			// A rebuild or a start that builds again keeps the server's
			// ports: they are the server's until it is deleted.
			if uerr := a.cfg.Driver.Destroy(undo, inst.ID); uerr != nil {
				log.Error("unwind failed "+cmd.Op, "err", uerr)
			}
		}
		be := &buildError{err: err, code: http.StatusInternalServerError}
		errors.As(err, &be)
		rep := compute.InstanceReport{PowerState: compute.PowerNoState,
			Fault:      &compute.Fault{Code: be.code, Message: be.err.Error()},
			Reschedule: be.reschedule && cmd.Op == compute.OpBuild && !adopting}
		switch cmd.Op {
		case compute.OpStart:
			rep.VMState = "stopped"
		case compute.OpRebuild:
			rep.VMState = "error"
		}
		return rep
	}
	vm := "active"
	if info.State != hypervisor.Running {
		vm = vmOf(info.State)
	}
	a.setGuest(inst, vm, int(info.State))
	addrs, err := a.addressesOf(ctx, ports, nets)
	if err != nil {
		// The guest runs; its fixed addresses are known, and the next
		// network change reports the floating ones.
		a.log.Warn("floating IPs of a new guest", "instance", inst.ID, "err", err)
		addrs = addresses(ports, nets)
	}
	return compute.InstanceReport{Success: true, VMState: vm, PowerState: int(info.State), Addresses: addrs}
}

// bootImages is what a guest boots from: its disk image and, for a
// direct kernel boot, the kernel and ramdisk.
type bootImages struct {
	img  *hypervisor.Image
	boot *hypervisor.DirectBoot
	err  error
}

func (a *Agent) bootImages(ctx context.Context, imageID string, props map[string]string, volumeBacked bool) bootImages {
	var bi bootImages
	if volumeBacked {
		// The root is a volume: only a direct boot's kernel and ramdisk
		// (the volume's image properties) come from the image service.
		bi.boot, bi.err = a.directBoot(ctx, props)
		return bi
	}
	// The disk image and the kernel (with its ramdisk) are independent
	// downloads when nothing is cached yet: fetched side by side.
	var bootErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		bi.boot, bootErr = a.directBoot(ctx, props)
	}()
	bi.img, bi.err = a.fetchImage(ctx, imageID)
	<-done
	if bi.err == nil {
		bi.err = bootErr
	}
	return bi
}

// plugPorts gives the instance its ports (undo on rv), looks up their
// networks and subnets and waits for their taps until tapCtx ends.
func (a *Agent) plugPorts(ctx, tapCtx context.Context, inst compute.InstanceSpec, rv *revert) ([]port, map[string]network, map[string]subnet, error) {
	fail := func(err error, reschedule bool) ([]port, map[string]network, map[string]subnet, error) {
		return nil, nil, nil, &buildError{err: err, code: http.StatusInternalServerError, reschedule: reschedule}
	}
	ports, err := a.ensurePorts(ctx, inst, rv)
	if err != nil {
		return fail(fmt.Errorf("network setup of instance %s: %w", inst.ID, err), false)
	}
	nets, subs, err := a.portDetails(ctx, ports)
	if err != nil {
		return fail(fmt.Errorf("network setup of instance %s: %w", inst.ID, err), false)
	}
	if err := a.waitTaps(tapCtx, ports); err != nil {
		return fail(err, true)
	}
	return ports, nets, subs, nil
}

func (a *Agent) spawn(ctx context.Context, inst compute.InstanceSpec, imageID string, rv *revert) (hypervisor.Info, []port, map[string]network, error) {
	fail := func(err error, code int, reschedule bool) (hypervisor.Info, []port, map[string]network, error) {
		return hypervisor.Info{}, nil, nil, &buildError{err: err, code: code, reschedule: reschedule}
	}
	if imageID == "" {
		imageID = inst.ImageID
	}
	imageFail := func(err error) (hypervisor.Info, []port, map[string]network, error) {
		var ie *imageError
		if errors.As(err, &ie) {
			return fail(err, ie.code, false)
		}
		return fail(fmt.Errorf("image %s: %w", imageID, err), http.StatusInternalServerError, true)
	}
	// The image (a few metadata calls when it is cached, a download when
	// not) is fetched while the ports are made and their taps awaited:
	// the networking agent starts on the ports as early as possible.
	root := rootVolume(inst)
	images := make(chan bootImages, 1)
	tapCtx, stopTaps := context.WithCancel(ctx)
	defer stopTaps()
	go func() {
		bi := a.bootImages(ctx, imageID, inst.ImageProperties, root != nil)
		if bi.err != nil {
			stopTaps() // no guest to plug: the build fails on the image
		}
		images <- bi
	}()
	ports, nets, subs, netErr := a.plugPorts(ctx, tapCtx, inst, rv)
	bi := <-images
	switch {
	case bi.err != nil:
		return imageFail(bi.err)
	case netErr != nil:
		return hypervisor.Info{}, nil, nil, netErr
	}
	img, boot := bi.img, bi.boot
	spec := hypervisor.Spec{
		UUID: inst.ID, Name: "instance-" + inst.ID[:min(8, len(inst.ID))],
		VCPUs: inst.Flavor.VCPUs, MemoryMiB: inst.Flavor.MemoryMB,
		Boot: boot,
	}
	if root != nil {
		disk, err := volumeDisk(*root)
		if err != nil {
			return fail(fmt.Errorf("boot volume of instance %s: %w", inst.ID, err), http.StatusInternalServerError, false)
		}
		spec.Disks = append(spec.Disks, disk)
	} else {
		spec.Disks = append(spec.Disks, hypervisor.Disk{Name: "root", Image: img, SizeBytes: int64(inst.Flavor.RootGB) << 30})
	}
	if inst.Flavor.EphemeralG > 0 {
		spec.Disks = append(spec.Disks, hypervisor.Disk{Name: "ephemeral0", SizeBytes: int64(inst.Flavor.EphemeralG) << 30})
	}
	if inst.Flavor.SwapMB > 0 {
		spec.Disks = append(spec.Disks, hypervisor.Disk{Name: "swap", SizeBytes: int64(inst.Flavor.SwapMB) << 20})
	}
	// The data volumes follow the local disks, in device order, as the
	// API named them.
	for _, v := range inst.Volumes {
		if v.BootIndex == 0 {
			continue
		}
		disk, err := volumeDisk(v)
		if err != nil {
			return fail(fmt.Errorf("volume of instance %s: %w", inst.ID, err), http.StatusInternalServerError, false)
		}
		spec.Disks = append(spec.Disks, disk)
	}
	for _, p := range ports {
		spec.NICs = append(spec.NICs, hypervisor.NIC{TapName: dataplane.PortDevice(a.cfg.TapPrefix, p.ID), MAC: p.MAC})
	}
	if inst.ConfigDrive || a.cfg.ForceConfigDrive {
		files, err := configDrive(inst, ports, nets, subs)
		if err != nil {
			return fail(fmt.Errorf("config drive of instance %s: %w", inst.ID, err), http.StatusBadRequest, false)
		}
		spec.ConfigDrive = &hypervisor.ConfigDrive{Files: files}
	}
	info, err := a.cfg.Driver.Spawn(ctx, spec)
	switch {
	case errors.Is(err, hypervisor.ErrExists):
		// Never a second guest: the one that runs is the one we built.
		info, err = a.cfg.Driver.GetState(ctx, inst.ID)
		if err != nil {
			return fail(fmt.Errorf("spawn %s: %w", inst.ID, err), http.StatusInternalServerError, true)
		}
	case err != nil:
		rv.add(func(ctx context.Context) error { return a.cfg.Driver.Destroy(ctx, inst.ID) })
		return fail(err, http.StatusInternalServerError, true)
	}
	return info, ports, nets, nil
}
