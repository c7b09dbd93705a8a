package compute

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// block_device_mapping_v2 of a server create: the pairs Nova supports
// that make sense for a guest here. image→local at boot index 0 is the
// server's image (as imageRef); volume→volume attaches an existing
// volume, the boot disk at boot index 0 (boot from volume); image,
// snapshot and blank→volume have the volume service make a volume of
// volume_size first.

// bdmRequest is one validated block_device_mapping_v2 entry.
type bdmRequest struct {
	SourceType          string
	DestinationType     string
	UUID                string
	BootIndex           int // -1: not bootable
	VolumeSize          int
	DeleteOnTermination bool
	DeviceName          string
	DiskBus             string
	Tag                 *string
}

// bdmPlan is what a create's mappings come to.
type bdmPlan struct {
	// ImageRef is the image of an image→local boot mapping.
	ImageRef string
	// Volumes are the volume mappings, the boot volume (if any) first.
	Volumes []bdmRequest
	// BootFromVolume: the root disk is a volume; the server has no image.
	BootFromVolume bool
}

var (
	bdmSources      = []string{"image", "volume", "snapshot", "blank"}
	bdmDestinations = []string{"local", "volume"}
)

// parseBlockDevices validates block_device_mapping_v2 without asking
// any other service.
func parseBlockDevices(raw []map[string]any) (bdmPlan, error) {
	var plan bdmPlan
	bad := func(format string, args ...any) (bdmPlan, error) {
		return bdmPlan{}, api.BadRequest("Block Device Mapping is Invalid: "+format, args...)
	}
	seen := map[string]bool{}
	boots := 0
	for _, m := range raw {
		var b bdmRequest
		var err error
		str := func(k string) (string, error) {
			v, ok := m[k]
			if !ok || v == nil {
				return "", nil
			}
			s, ok := v.(string)
			if !ok {
				return "", api.BadRequest("Invalid input for field/attribute %s. Value: %v. %v is not of type 'string'", k, v, v)
			}
			return s, nil
		}
		for k := range m {
			switch k {
			case "source_type", "destination_type", "uuid", "boot_index", "volume_size", "delete_on_termination", "device_name",
				"disk_bus", "tag", "guest_format", "device_type", "volume_type", "no_device", "image_id", "volume_id", "snapshot_id":
			default:
				return bdmPlan{}, api.BadRequest("Invalid input for field/attribute block_device_mapping_v2. Additional properties are not allowed ('%s' was unexpected)", k)
			}
		}
		if b.SourceType, err = str("source_type"); err != nil {
			return bdmPlan{}, err
		}
		if b.DestinationType, err = str("destination_type"); err != nil {
			return bdmPlan{}, err
		}
		if b.UUID, err = str("uuid"); err != nil {
			return bdmPlan{}, err
		}
		if b.DeviceName, err = str("device_name"); err != nil {
			return bdmPlan{}, err
		}
		if b.DiskBus, err = str("disk_bus"); err != nil {
			return bdmPlan{}, err
		}
		if t, ok := m["tag"].(string); ok {
			b.Tag = &t
		}
		if b.SourceType == "" {
			return bad("source_type is required.")
		}
		if !contains(bdmSources, b.SourceType) {
			return bdmPlan{}, api.BadRequest("Invalid input for field/attribute source_type. Value: %s. '%s' is not one of %s", b.SourceType, b.SourceType, pyList(bdmSources))
		}
		if b.DestinationType == "" {
			b.DestinationType = "local"
			if b.SourceType == "volume" || b.SourceType == "snapshot" {
				b.DestinationType = "volume"
			}
		}
		if !contains(bdmDestinations, b.DestinationType) {
			return bdmPlan{}, api.BadRequest("Invalid input for field/attribute destination_type. Value: %s. '%s' is not one of %s", b.DestinationType, b.DestinationType, pyList(bdmDestinations))
		}
		if b.BootIndex, err = bootIndex(m["boot_index"]); err != nil {
			return bdmPlan{}, err
		}
		if b.VolumeSize, err = volumeSize(m["volume_size"]); err != nil {
			return bdmPlan{}, err
		}
		switch v := m["delete_on_termination"].(type) {
		case nil:
		case bool:
			b.DeleteOnTermination = v
		case string:
			ok, valid := queryBool(v)
			if !valid {
				return bdmPlan{}, api.BadRequest("Invalid input for field/attribute delete_on_termination. Value: %s.", v)
			}
			b.DeleteOnTermination = ok
		default:
			return bdmPlan{}, api.BadRequest("Invalid input for field/attribute delete_on_termination. Value: %v.", v)
		}
		if b.DeviceName != "" && !devicePattern.MatchString(b.DeviceName) {
			return bad("Device name %s is invalid.", b.DeviceName)
		}
		if b.DiskBus != "" && b.DiskBus != "virtio" && b.DiskBus != "scsi" {
			return bad("Disk bus %s is not supported.", b.DiskBus)
		}
		if b.SourceType != "blank" && !isUUID(b.UUID) {
			return bad("The %s mapping needs the uuid of its source.", b.SourceType)
		}
		if b.BootIndex == 0 {
			boots++
		}
		switch {
		case b.DestinationType == "local" && b.SourceType == "image":
			if b.BootIndex != 0 {
				return bad("An image with destination local must be the boot device (boot_index 0).")
			}
			plan.ImageRef = b.UUID
			continue
		case b.DestinationType == "local":
			return bad("Local %s disks are not supported; use the flavor's ephemeral and swap disks.", b.SourceType)
		case b.SourceType == "blank" && b.BootIndex == 0:
			return bad("A blank volume cannot be the boot device.")
		case b.SourceType != "volume" && b.VolumeSize <= 0:
			return bad("A volume made from %s needs a volume_size.", b.SourceType)
		}
		if b.SourceType == "volume" {
			if seen[b.UUID] {
				return bad("Volume %s is mapped twice.", b.UUID)
			}
			seen[b.UUID] = true
		}
		if b.BootIndex == 0 {
			plan.BootFromVolume = true
			plan.Volumes = append([]bdmRequest{b}, plan.Volumes...)
		} else {
			plan.Volumes = append(plan.Volumes, b)
		}
	}
	if boots > 1 {
		return bad("Boot sequence for the instance and image/block device mapping combination is not valid.")
	}
	return plan, nil
}

func pyList(list []string) string {
	return "['" + strings.Join(list, "', '") + "']"
}

// bootIndex reads boot_index: an integer, a numeric string or null
// (none); a negative index is none too.
func bootIndex(v any) (int, error) {
	n := -1
	switch x := v.(type) {
	case nil:
		return -1, nil
	case float64:
		if x != math.Trunc(x) {
			return 0, api.BadRequest("Invalid input for field/attribute boot_index. Value: %v.", x)
		}
		n = int(x)
	case string:
		if x == "" || strings.EqualFold(x, "none") {
			return -1, nil
		}
		i, err := strconv.Atoi(x)
		if err != nil {
			return 0, api.BadRequest("Invalid input for field/attribute boot_index. Value: %s.", x)
		}
		n = i
	default:
		return 0, api.BadRequest("Invalid input for field/attribute boot_index. Value: %v.", x)
	}
	if n < 0 {
		return -1, nil
	}
	return n, nil
}

// volumeSize reads volume_size: an integer or a numeric string (GiB).
func volumeSize(v any) (int, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case float64:
		if x != math.Trunc(x) || x < 0 || x > dbMaxInt {
			return 0, api.BadRequest("Invalid input for field/attribute volume_size. Value: %v.", x)
		}
		return int(x), nil
	case string:
		n, err := strconv.Atoi(x)
		if err != nil || n < 0 {
			return 0, api.BadRequest("Invalid input for field/attribute volume_size. Value: %s.", x)
		}
		return n, nil
	}
	return 0, api.BadRequest("Invalid input for field/attribute volume_size. Value: %v.", v)
}

// volumeImageCore are the volume_image_metadata keys Cinder copies from
// the image itself; the rest are the image's properties.
var volumeImageCore = map[string]bool{
	"image_id": true, "image_name": true, "checksum": true, "container_format": true, "disk_format": true,
	"min_disk": true, "min_ram": true, "size": true,
}

// preparedVolumes are a create's volumes, checked, reserved or asked
// for, with what the server takes from its boot volume.
type preparedVolumes struct {
	rows       []blockDevice // without instance id and device yet
	imageProps map[string]string
	created    []string // volumes made for this request
	reserved   []string // existing volumes reserved for it
	auth       VolumeAuth
}

// prepareCreateVolumes checks the existing volumes of a create (each
// available, the boot one bootable), reserves them and asks the volume
// service for the new ones, with the caller's token. undo gives it all
// back when the create fails after.
func (s *Service) prepareCreateVolumes(r *http.Request, plan bdmPlan, zone string) (*preparedVolumes, error) {
	if s.cfg.Volumes == nil {
		return nil, api.BadRequest("Block Device Mapping is Invalid: the block storage service is not configured.")
	}
	ctx := r.Context()
	c := s.caller(r)
	p := &preparedVolumes{imageProps: map[string]string{}, auth: VolumeAuth{Token: c.token, Project: c.project}}
	fail := func(err error) (*preparedVolumes, error) {
		p.undo(s, ctx)
		return nil, err
	}
	v := s.cfg.Volumes
	for _, b := range plan.Volumes {
		row := blockDevice{ID: newID(), ProjectID: c.project, BootIndex: b.BootIndex, SourceType: b.SourceType,
			VolumeSize: b.VolumeSize, DeleteOnTermination: b.DeleteOnTermination, Tag: b.Tag, DiskBus: b.DiskBus, Device: b.DeviceName}
		switch b.SourceType {
		case "volume":
			vol, err := v.Volume(ctx, p.auth, b.UUID)
			if err != nil {
				return fail(volumeFault(err, b.UUID, func(id string) error {
					return api.BadRequest("Block Device Mapping is Invalid: failed to get volume %s.", id)
				}))
			}
			if vol.Status != "available" {
				return fail(api.BadRequest("Invalid volume: volume %s status must be available, but it is %s.", b.UUID, vol.Status))
			}
			if b.BootIndex == 0 {
				if !vol.Bootable {
					return fail(api.BadRequest("Block Device %s is not bootable.", b.UUID))
				}
				for k, val := range vol.ImageMetadata {
					if !volumeImageCore[k] {
						p.imageProps[k] = val
					}
				}
			}
			if err := v.Reserve(ctx, p.auth, b.UUID); err != nil {
				return fail(volumeFault(err, b.UUID, volumeNotFound400))
			}
			p.reserved = append(p.reserved, b.UUID)
			row.VolumeID, row.Status = b.UUID, bdmReserved
		default:
			req := VolumeCreate{Size: b.VolumeSize, AvailabilityZone: zone}
			switch b.SourceType {
			case "image":
				row.ImageID, req.ImageRef = b.UUID, b.UUID
				if s.cfg.Images != nil {
					img, err := s.activeImage(ctx, c.token, b.UUID)
					if err != nil {
						return fail(err)
					}
					if need := max(img.MinDiskGB, int((img.SizeBytes+(1<<30)-1)>>30)); b.VolumeSize < need {
						return fail(api.BadRequest("Volume size %d GiB is smaller than image %s needs (%d GiB).", b.VolumeSize, b.UUID, need))
					}
					if b.BootIndex == 0 {
						for k, val := range img.Properties {
							p.imageProps[k] = val
						}
					}
				}
			case "snapshot":
				req.SnapshotID = b.UUID
			}
			vol, err := v.CreateVolume(ctx, p.auth, req)
			if err != nil {
				return fail(volumeFault(err, b.UUID, func(id string) error {
					return api.BadRequest("Block Device Mapping is Invalid: failed to get %s %s.", b.SourceType, id)
				}))
			}
			p.created = append(p.created, vol.ID)
			row.VolumeID, row.Status = vol.ID, bdmCreating
		}
		p.rows = append(p.rows, row)
	}
	return p, nil
}

// undo gives back what prepareCreateVolumes took.
func (p *preparedVolumes) undo(s *Service, ctx context.Context) {
	for _, id := range p.reserved {
		s.volumeUndo(ctx, "unreserve", id, func(ctx context.Context) error { return s.cfg.Volumes.Unreserve(ctx, p.auth, id) })
	}
	for _, id := range p.created {
		s.volumeUndo(ctx, "delete", id, func(ctx context.Context) error { return s.cfg.Volumes.DeleteVolume(ctx, p.auth, id) })
	}
}

// insertCreateVolumes records a new server's mappings, naming their
// devices: the boot volume is the root, the others follow the flavor's
// local disks (or take the device they asked for when it is free).
func insertCreateVolumes(ctx context.Context, tx *store.Tx, i instance, rows []blockDevice, bus string) error {
	prefix := busPrefix(bus)
	used := usedDevices(i, nil, prefix)
	ts := store.FormatTime(now())
	for _, b := range rows {
		b.InstanceID, b.CreatedAt, b.UpdatedAt = i.ID, ts, ts
		if b.DiskBus == "" {
			b.DiskBus = bus
		}
		switch {
		case b.BootIndex == 0:
			b.Device = deviceName(busPrefix(b.DiskBus), 0)
		case b.Device != "" && !used[b.Device]:
		default:
			d, err := nextDevice(used, busPrefix(b.DiskBus))
			if err != nil {
				return err
			}
			b.Device = d
		}
		used[b.Device] = true
		if err := insertBlockDevice(ctx, tx, b); err != nil {
			return err
		}
	}
	return nil
}
