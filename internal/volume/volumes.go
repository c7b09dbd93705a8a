package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// createBody is POST /volumes. Cinder 3.0 takes the legacy display_*
// names beside name and description, and ignores keys it does not know.
type createBody struct {
	Volume *struct {
		Size               json.RawMessage   `json:"size"`
		Name               *string           `json:"name"`
		DisplayName        *string           `json:"display_name"`
		Description        *string           `json:"description"`
		DisplayDescription *string           `json:"display_description"`
		ImageRef           *string           `json:"imageRef"`
		ImageID            *string           `json:"image_id"`
		SnapshotID         *string           `json:"snapshot_id"`
		SourceVolID        *string           `json:"source_volid"`
		VolumeType         *string           `json:"volume_type"`
		AvailabilityZone   *string           `json:"availability_zone"`
		Metadata           map[string]string `json:"metadata"`
		Multiattach        *bool             `json:"multiattach"`
	} `json:"volume"`
	Hints map[string]any `json:"OS-SCH-HNT:scheduler_hints"`
}

// parseSize reads a size given as an integer or a string of one; absent
// is 0. Anything else, and anything below 1, is a 400.
func parseSize(raw json.RawMessage) (int, bool, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, false, nil
	}
	bad := api.BadRequest("Invalid input received: 'size' must be an integer greater than 0, not %s.", s)
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, false, bad
		}
		n, ok := parseIntStrict(str)
		if !ok || n < 1 {
			return 0, false, bad
		}
		return n, true, nil
	}
	n, ok := parseIntStrict(s)
	if !ok || n < 1 {
		return 0, false, bad
	}
	return n, true, nil
}

// parseIntStrict parses a decimal integer with an optional sign and
// nothing else around it.
func parseIntStrict(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 1<<31 || n < -(1<<31) {
		return 0, false
	}
	return n, true
}

// checkMetadata enforces Cinder's limits on metadata: keys of 1 to 255
// characters and values of at most 255.
func checkMetadata(m map[string]string) error {
	for k, v := range m {
		if k == "" || len(k) > 255 {
			return api.BadRequest("Invalid input received: metadata keys must be 1 to 255 characters.")
		}
		if len(v) > 255 {
			return api.BadRequest("Invalid input received: the value of metadata key %s is longer than 255 characters.", k)
		}
	}
	return nil
}

// pick returns the first set string of the aliases.
func pick(ps ...*string) *string {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

func (s *Service) createVolume(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	if err := s.authorize(r, "volume:create", c.project); err != nil {
		return nil, err
	}
	var body createBody
	if err := api.DecodeJSONLoose(r, &body); err != nil {
		return nil, err
	}
	b := body.Volume
	if b == nil {
		return nil, api.BadRequest("Missing required element 'volume' in request body.")
	}
	size, sized, err := parseSize(b.Size)
	if err != nil {
		return nil, err
	}
	if err := checkMetadata(b.Metadata); err != nil {
		return nil, err
	}
	name, desc := pick(b.Name, b.DisplayName), pick(b.Description, b.DisplayDescription)
	if name != nil && len(*name) > 255 {
		return nil, api.BadRequest("Invalid input received: name is longer than 255 characters.")
	}
	v := &volume{ID: newID(), ProjectID: c.project, UserID: c.user, Name: name, Description: desc, Status: statusCreating,
		Metadata: b.Metadata, Multiattach: b.Multiattach != nil && *b.Multiattach}
	cmd := agentproto.Command{ID: newID(), Op: agentproto.OpCreate, VolumeID: v.ID, RequestID: api.RequestID(ctx)}

	var sourceHost string
	var srcType string
	imageRef := pick(b.ImageRef, b.ImageID)
	sources := 0
	for _, p := range []*string{imageRef, b.SnapshotID, b.SourceVolID} {
		if p != nil && *p != "" {
			sources++
		}
	}
	if sources > 1 {
		return nil, api.BadRequest("Invalid input received: only one of imageRef, snapshot_id and source_volid may be given.")
	}
	switch {
	case b.SourceVolID != nil && *b.SourceVolID != "":
		src, err := loadVolume(ctx, s.db, c, *b.SourceVolID)
		if err != nil {
			return nil, err
		}
		if src.Status != statusAvailable && src.Status != statusInUse {
			return nil, api.BadRequest("Invalid volume: Source volume status must be available or in-use, but the status is %s.", src.Status)
		}
		if !sized {
			size = src.Size
		} else if size < src.Size {
			return nil, api.BadRequest("Invalid input received: Clones currently must be >= original volume size.")
		}
		v.SourceID, v.Bootable, v.ImageMetadata, v.Zone = &src.ID, src.Bootable, src.ImageMetadata, src.Zone
		sourceHost, srcType = src.Host, src.TypeID
		cmd.SourceVolumeID = src.ID
	case b.SnapshotID != nil && *b.SnapshotID != "":
		snap, err := s.loadSnapshot(ctx, s.db, c, *b.SnapshotID)
		if err != nil {
			return nil, err
		}
		if snap.Status != statusAvailable {
			return nil, api.BadRequest("Invalid snapshot: Originating snapshot status must be 'available'.")
		}
		if !sized {
			size = snap.Size
		} else if size < snap.Size {
			return nil, api.BadRequest("Invalid input received: Volume size '%d'GB cannot be smaller than the snapshot size %dGB. They must be >= original snapshot size.", size, snap.Size)
		}
		src, err := loadVolume(ctx, s.db, caller{admin: true}, snap.VolumeID)
		if err == nil {
			v.Bootable, v.ImageMetadata, v.Zone, srcType = src.Bootable, src.ImageMetadata, src.Zone, src.TypeID
		}
		v.SnapshotID, sourceHost = &snap.ID, snap.Host
		cmd.SourceSnapshotID = snap.ID
	case imageRef != nil && *imageRef != "":
		if !sized {
			return nil, api.BadRequest("Invalid input received: 'size' is required when creating a volume from an image.")
		}
		img, err := s.image(ctx, c.token, *imageRef)
		if err != nil {
			return nil, err
		}
		if img.Status != "active" {
			return nil, api.BadRequest("Invalid image identifier or unable to access requested image: image %s is %s, not active.", img.ID, img.Status)
		}
		const gib = 1 << 30
		if img.MinDiskGB > size {
			return nil, api.BadRequest("Invalid input received: Volume size %dGB cannot be smaller than the image minDisk size %dGB.", size, img.MinDiskGB)
		}
		if need := (img.VirtualSizeBytes + gib - 1) / gib; need > int64(size) {
			return nil, api.BadRequest("Invalid input received: Image virtual size is %dGB and doesn't fit in a volume of size %dGB.", need, size)
		}
		if need := (img.SizeBytes + gib - 1) / gib; need > int64(size) {
			return nil, api.BadRequest("Invalid input received: Size of specified image %dGB is larger than volume size %dGB.", need, size)
		}
		v.ImageID = &img.ID
		cmd.ImageID = img.ID
	default:
		if !sized {
			return nil, api.BadRequest("Invalid input received: 'size' must be an integer greater than 0.")
		}
	}
	v.Size, cmd.SizeGB = size, size

	typeRef := ""
	switch {
	case b.VolumeType != nil && *b.VolumeType != "":
		typeRef = *b.VolumeType
	case srcType != "":
		typeRef = srcType
	default:
		typeRef = DefaultTypeName
	}
	vt, err := s.findType(ctx, s.db, c, typeRef)
	if err != nil {
		return nil, err
	}
	v.TypeID = vt.ID

	if b.AvailabilityZone != nil && *b.AvailabilityZone != "" {
		zs, err := s.zones(ctx)
		if err != nil {
			return nil, err
		}
		if !containsStr(zs, *b.AvailabilityZone) {
			return nil, api.BadRequest("Invalid input received: Availability zone '%s' is invalid.", *b.AvailabilityZone)
		}
		if v.Zone != "" && v.Zone != *b.AvailabilityZone {
			return nil, api.BadRequest("Invalid input received: The volume must be in the availability zone of its source, %s.", v.Zone)
		}
		v.Zone = *b.AvailabilityZone
	}
	if v.Zone == "" {
		v.Zone = s.cfg.DefaultAvailabilityZone
	}

	t := stamp()
	v.CreatedAt, v.UpdatedAt = t, t
	err = s.writeTx(ctx, func(tx *store.Tx) error {
		if err := s.checkQuota(ctx, tx, c.project, 1, 0, size, size); err != nil {
			return err
		}
		v.Status, v.Host, v.Backend, v.Pool = statusCreating, "", "", ""
		switch {
		case sourceHost != "":
			h, err := s.loadHost(ctx, tx, sourceHost)
			if err != nil {
				return err
			}
			if h == nil || !s.up(h) {
				v.Status = statusError
			} else {
				v.Host, v.Backend, v.Pool = h.Host, h.Backend, h.Pool
			}
		default:
			h, err := s.pickHost(ctx, tx, v.Zone, size)
			if err != nil {
				return err
			}
			if h == nil {
				v.Status = statusError
			} else {
				v.Host, v.Backend, v.Pool = h.Host, h.Backend, h.Pool
			}
		}
		var imgMeta *string
		if v.ImageMetadata != nil {
			s := jsonText(v.ImageMetadata)
			imgMeta = &s
		}
		_, err := tx.Exec(ctx, `INSERT INTO volume_volumes (id, project_id, user_id, name, description, status, size, availability_zone, host, backend, pool,
			type_id, bootable, multiattach, admin_metadata, snapshot_id, source_volid, image_id, image_metadata, metadata, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{}', ?, ?, ?, ?, ?, ?, ?)`,
			v.ID, v.ProjectID, v.UserID, v.Name, v.Description, v.Status, v.Size, v.Zone, v.Host, v.Backend, v.Pool,
			v.TypeID, boolInt(v.Bootable), boolInt(v.Multiattach), v.SnapshotID, v.SourceID, v.ImageID, imgMeta, jsonText(v.Metadata), t, t)
		if err != nil {
			return fmt.Errorf("insert volume: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if v.Status == statusCreating {
		if err := s.send(ctx, v.Host, cmd); err != nil {
			s.log.Error("send volume create", "volume", v.ID, "host", v.Host, "err", err)
			if _, err := casStatus(ctx, s.db, v.ID, statusError, statusCreating); err != nil {
				return nil, err
			}
			v.Status = statusError
		}
	} else {
		s.log.Warn("no storage host for volume", "volume", v.ID, "zone", v.Zone, "size", size)
		s.recordMessage(ctx, s.db, userMessage{"VOLUME", actionScheduleAllocate, detailNoBackend}, v.ID, api.RequestID(ctx))
	}
	return api.JSON(http.StatusAccepted, map[string]any{"volume": s.view(s.baseURL(r), v, vt.Name, false, c.admin)}), nil
}

// image looks an image up with the caller's token.
func (s *Service) image(ctx context.Context, token, id string) (*ImageInfo, error) {
	if s.cfg.Images == nil {
		return nil, api.BadRequest("Invalid input received: this cloud has no image service to create volumes from.")
	}
	img, err := s.cfg.Images.Image(ctx, token, id)
	if errors.Is(err, ErrImageNotFound) {
		return nil, api.NotFound("Image %s could not be found.", id)
	}
	if err != nil {
		return nil, fmt.Errorf("look up image %s: %w", id, err)
	}
	return img, nil
}

// typeName names a type id for a volume body (the id when the type is gone).
func (s *Service) typeName(ctx context.Context, id string) string {
	var name string
	if err := s.db.QueryRow(ctx, `SELECT name FROM volume_types WHERE id = ?`, id).Scan(&name); err != nil {
		return id
	}
	return name
}

func (s *Service) showVolume(r *http.Request) (*api.Response, error) {
	c := s.caller(r)
	v, err := loadVolume(r.Context(), s.db, c, r.PathValue("volume_id"))
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "volume:get", v.ProjectID); err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"volume": s.view(s.baseURL(r), v, s.typeName(r.Context(), v.TypeID), true, c.admin)}), nil
}

func (s *Service) updateVolume(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	var body struct {
		Volume *struct {
			Name               api.Optional[string]            `json:"name"`
			DisplayName        api.Optional[string]            `json:"display_name"`
			Description        api.Optional[string]            `json:"description"`
			DisplayDescription api.Optional[string]            `json:"display_description"`
			Metadata           api.Optional[map[string]string] `json:"metadata"`
		} `json:"volume"`
	}
	// Look the volume up first: an unknown id is a 404 whatever the body.
	if _, err := loadVolume(ctx, s.db, c, r.PathValue("volume_id")); err != nil {
		return nil, err
	}
	if err := api.DecodeJSONLoose(r, &body); err != nil {
		return nil, err
	}
	b := body.Volume
	if b == nil {
		return nil, api.BadRequest("Missing required element 'volume' in request body.")
	}
	if b.Metadata.Set && !b.Metadata.Null {
		if err := checkMetadata(b.Metadata.Value); err != nil {
			return nil, err
		}
	}
	var v *volume
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if v, err = loadVolume(ctx, tx, c, r.PathValue("volume_id")); err != nil {
			return err
		}
		if err := s.authorize(r, "volume:update", v.ProjectID); err != nil {
			return err
		}
		for _, o := range []api.Optional[string]{b.DisplayName, b.Name} {
			if o.Set {
				v.Name = nil
				if !o.Null {
					n := o.Value
					v.Name = &n
				}
			}
		}
		for _, o := range []api.Optional[string]{b.DisplayDescription, b.Description} {
			if o.Set {
				v.Description = nil
				if !o.Null {
					d := o.Value
					v.Description = &d
				}
			}
		}
		if v.Name != nil && len(*v.Name) > 255 {
			return api.BadRequest("Invalid input received: name is longer than 255 characters.")
		}
		if b.Metadata.Set {
			v.Metadata = b.Metadata.Value
		}
		v.UpdatedAt = stamp()
		_, err = tx.Exec(ctx, `UPDATE volume_volumes SET name = ?, description = ?, metadata = ?, updated_at = ? WHERE id = ?`,
			v.Name, v.Description, jsonText(v.Metadata), v.UpdatedAt, v.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"volume": s.view(s.baseURL(r), v, s.typeName(ctx, v.TypeID), false, c.admin)}), nil
}

// deletable are the statuses a volume may be deleted from (Cinder's).
var deletable = []string{statusAvailable, statusError, "error_restoring", "error_extending", "error_managing"}

func (s *Service) deleteVolume(r *http.Request) (*api.Response, error) {
	ctx := r.Context()
	c := s.caller(r)
	cascade := strings.EqualFold(r.URL.Query().Get("cascade"), "true")
	return s.deleteVolumeAs(ctx, r, c, r.PathValue("volume_id"), cascade, false)
}

// deleteVolumeAs deletes a volume; force (os-force_delete) skips the
// status check, as Cinder's admin action does.
func (s *Service) deleteVolumeAs(ctx context.Context, r *http.Request, c caller, id string, cascade, force bool) (*api.Response, error) {
	var v *volume
	var snaps []string
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		if v, err = loadVolume(ctx, tx, c, id); err != nil {
			return err
		}
		if err := s.authorize(r, "volume:delete", v.ProjectID); err != nil {
			return err
		}
		if !force {
			if !containsStr(deletable, v.Status) {
				return api.BadRequest("Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots or be disassociated from snapshots after volume transfer.")
			}
			if len(v.Attachments) > 0 {
				return api.BadRequest("Invalid volume: Volume is attached.")
			}
		}
		snaps, err = store.QueryStrings(ctx, tx, `SELECT id FROM volume_snapshots WHERE volume_id = ?`, v.ID)
		if err != nil {
			return fmt.Errorf("snapshots of %s: %w", v.ID, err)
		}
		if len(snaps) > 0 && !cascade {
			return api.BadRequest("Invalid volume: Volume %s still has %d dependent snapshots.", v.ID, len(snaps))
		}
		from := deletable
		if force {
			from = nil
		}
		if v.Host == "" {
			// Never placed: nothing exists on any host.
			if _, err := tx.Exec(ctx, `DELETE FROM volume_snapshots WHERE volume_id = ?`, v.ID); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM volume_volumes WHERE id = ?`, v.ID)
			return err
		}
		if from == nil {
			_, err = tx.Exec(ctx, `UPDATE volume_volumes SET status = ?, updated_at = ? WHERE id = ?`, statusDeleting, stamp(), v.ID)
		} else {
			var won bool
			won, err = casStatus(ctx, tx, v.ID, statusDeleting, from...)
			if err == nil && !won {
				return store.ErrRetry
			}
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM volume_attachments WHERE volume_id = ?`, v.ID); err != nil {
			return err
		}
		if len(snaps) > 0 {
			_, err = tx.Exec(ctx, `UPDATE volume_snapshots SET status = 'deleting', updated_at = ? WHERE volume_id = ?`, stamp(), v.ID)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if v.Host != "" {
		for _, sid := range snaps {
			if err := s.send(ctx, v.Host, agentproto.Command{ID: newID(), Op: agentproto.OpDeleteSnapshot, VolumeID: v.ID, SnapshotID: sid}); err != nil {
				return nil, fmt.Errorf("delete snapshot %s: %w", sid, err)
			}
		}
		// A command that cannot be sent leaves the volume deleting; the
		// host's heartbeats settle it (reconcile), or an admin force-deletes it.
		if err := s.send(ctx, v.Host, agentproto.Command{ID: newID(), Op: agentproto.OpDelete, VolumeID: v.ID}); err != nil {
			return nil, fmt.Errorf("delete volume %s: %w", v.ID, err)
		}
	}
	return accepted(), nil
}
