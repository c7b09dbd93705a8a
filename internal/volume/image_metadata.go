package volume

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// The volume_image_metadata actions: what Nova boots a volume with
// (kernel_id, ramdisk_id, hw_* ...) can be set, unset and shown by the
// volume's owner, as Cinder allows.

// changeImageMetadata applies change to the volume's image metadata in
// one transaction and returns the result.
func (s *Service) changeImageMetadata(r *http.Request, c caller, id string, change func(map[string]string) error) (map[string]string, error) {
	ctx := r.Context()
	var out map[string]string
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		v, err := s.loadAuthorized(ctx, tx, r, c, id, "volume_extension:volume_image_metadata:set")
		if err != nil {
			return err
		}
		out = v.ImageMetadata
		if out == nil {
			out = map[string]string{}
		}
		if err := change(out); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE volume_volumes SET image_metadata = ?, updated_at = ? WHERE id = ?`, jsonText(out), stamp(), id)
		return err
	})
	return out, err
}

func (s *Service) setImageMetadata(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	var a struct {
		Metadata map[string]any `json:"metadata"`
	}
	if err := decodeAction(raw, &a); err != nil {
		return nil, err
	}
	if a.Metadata == nil {
		return nil, api.BadRequest("Malformed request body: 'metadata' is required.")
	}
	in, err := stringMap(a.Metadata)
	if err != nil {
		return nil, err
	}
	out, err := s.changeImageMetadata(r, c, id, func(m map[string]string) error {
		for k, v := range in {
			m[k] = v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.JSON(http.StatusOK, map[string]any{"metadata": out}), nil
}

func (s *Service) unsetImageMetadata(r *http.Request, c caller, id string, raw json.RawMessage) (*api.Response, error) {
	var a struct {
		Key string `json:"key"`
	}
	if err := decodeAction(raw, &a); err != nil {
		return nil, err
	}
	if a.Key == "" {
		return nil, api.BadRequest("Malformed request body: 'key' is required.")
	}
	if _, err := s.changeImageMetadata(r, c, id, func(m map[string]string) error {
		if _, ok := m[a.Key]; !ok {
			return api.NotFound("Glance metadata for volume %s with key %s could not be found.", id, a.Key)
		}
		delete(m, a.Key)
		return nil
	}); err != nil {
		return nil, err
	}
	return &api.Response{Status: http.StatusOK}, nil
}

func (s *Service) showImageMetadata(r *http.Request, c caller, id string, _ json.RawMessage) (*api.Response, error) {
	v, err := loadVolume(r.Context(), s.db, c, id)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "volume:get", v.ProjectID); err != nil {
		return nil, fmt.Errorf("show image metadata: %w", err)
	}
	meta := v.ImageMetadata
	if meta == nil {
		meta = map[string]string{}
	}
	return api.JSON(http.StatusOK, map[string]any{"metadata": meta}), nil
}
