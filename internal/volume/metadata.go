package volume

import (
	"context"
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// metaOwner abstracts the two resources with metadata sub-resources,
// volumes and snapshots, which behave the same.
type metaOwner struct {
	table, param string
	load         func(ctx context.Context, q store.Querier, c caller, id string) (project string, meta map[string]string, err error)
}

func (s *Service) volumeMeta() metaOwner {
	return metaOwner{table: "volume_volumes", param: "volume_id", load: func(ctx context.Context, q store.Querier, c caller, id string) (string, map[string]string, error) {
		v, err := loadVolume(ctx, q, c, id)
		if err != nil {
			return "", nil, err
		}
		return v.ProjectID, v.Metadata, nil
	}}
}

func (s *Service) snapshotMeta() metaOwner {
	return metaOwner{table: "volume_snapshots", param: "snapshot_id", load: func(ctx context.Context, q store.Querier, c caller, id string) (string, map[string]string, error) {
		sn, err := s.loadSnapshot(ctx, q, c, id)
		if err != nil {
			return "", nil, err
		}
		return sn.ProjectID, sn.Metadata, nil
	}}
}

// changeMeta applies change to the resource's metadata in one
// transaction and returns the result.
func (s *Service) changeMeta(r *http.Request, o metaOwner, change func(map[string]string) (map[string]string, error)) (map[string]string, error) {
	ctx := r.Context()
	c := s.caller(r)
	var out map[string]string
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		project, meta, err := o.load(ctx, tx, c, r.PathValue(o.param))
		if err != nil {
			return err
		}
		if err := s.authorize(r, "volume:update_volume_metadata", project); err != nil {
			return err
		}
		if out, err = change(meta); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE `+o.table+` SET metadata = ?, updated_at = ? WHERE id = ?`, jsonText(out), stamp(), r.PathValue(o.param))
		return err
	})
	return out, err
}

// metaBody decodes {"metadata": {...}} with string values.
func metaBody(r *http.Request) (map[string]string, error) {
	var body struct {
		Metadata *map[string]any `json:"metadata"`
	}
	if err := api.DecodeJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Metadata == nil {
		return nil, api.BadRequest("Malformed request body: 'metadata' is required.")
	}
	return stringMap(*body.Metadata)
}

// stringMap takes metadata values that are strings; anything else is a
// 400, as Cinder's schema says.
func stringMap(in map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(in))
	for k, v := range in {
		s, ok := v.(string)
		if !ok {
			return nil, api.BadRequest("Invalid input received: the value of metadata key %s must be a string.", k)
		}
		out[k] = s
	}
	return out, checkMetadata(out)
}

func (s *Service) metaRoutes(o metaOwner) (list, create, replace, show, update, del api.HandlerFunc) {
	list = func(r *http.Request) (*api.Response, error) {
		project, meta, err := o.load(r.Context(), s.db, s.caller(r), r.PathValue(o.param))
		if err != nil {
			return nil, err
		}
		if err := s.authorize(r, "volume:get_volume_metadata", project); err != nil {
			return nil, err
		}
		return api.JSON(http.StatusOK, map[string]any{"metadata": meta}), nil
	}
	create = func(r *http.Request) (*api.Response, error) {
		if _, _, err := o.load(r.Context(), s.db, s.caller(r), r.PathValue(o.param)); err != nil {
			return nil, err
		}
		in, err := metaBody(r)
		if err != nil {
			return nil, err
		}
		out, err := s.changeMeta(r, o, func(m map[string]string) (map[string]string, error) {
			for k, v := range in {
				m[k] = v
			}
			return m, nil
		})
		if err != nil {
			return nil, err
		}
		return api.JSON(http.StatusOK, map[string]any{"metadata": out}), nil
	}
	replace = func(r *http.Request) (*api.Response, error) {
		if _, _, err := o.load(r.Context(), s.db, s.caller(r), r.PathValue(o.param)); err != nil {
			return nil, err
		}
		in, err := metaBody(r)
		if err != nil {
			return nil, err
		}
		out, err := s.changeMeta(r, o, func(map[string]string) (map[string]string, error) { return in, nil })
		if err != nil {
			return nil, err
		}
		return api.JSON(http.StatusOK, map[string]any{"metadata": out}), nil
	}
	show = func(r *http.Request) (*api.Response, error) {
		project, meta, err := o.load(r.Context(), s.db, s.caller(r), r.PathValue(o.param))
		if err != nil {
			return nil, err
		}
		if err := s.authorize(r, "volume:get_volume_metadata", project); err != nil {
			return nil, err
		}
		key := r.PathValue("key")
		v, ok := meta[key]
		if !ok {
			return nil, api.NotFound("Metadata item was not found.")
		}
		return api.JSON(http.StatusOK, map[string]any{"meta": map[string]string{key: v}}), nil
	}
	update = func(r *http.Request) (*api.Response, error) {
		if _, _, err := o.load(r.Context(), s.db, s.caller(r), r.PathValue(o.param)); err != nil {
			return nil, err
		}
		var body struct {
			Meta *map[string]any `json:"meta"`
		}
		if err := api.DecodeJSON(r, &body); err != nil {
			return nil, err
		}
		if body.Meta == nil {
			return nil, api.BadRequest("Malformed request body: 'meta' is required.")
		}
		key := r.PathValue("key")
		if len(*body.Meta) > 1 {
			return nil, api.BadRequest("Request body contains too many items.")
		}
		in, err := stringMap(*body.Meta)
		if err != nil {
			return nil, err
		}
		val, ok := in[key]
		if !ok {
			return nil, api.BadRequest("Request body and URI mismatch.")
		}
		if _, err := s.changeMeta(r, o, func(m map[string]string) (map[string]string, error) {
			m[key] = val
			return m, nil
		}); err != nil {
			return nil, err
		}
		return api.JSON(http.StatusOK, map[string]any{"meta": map[string]string{key: val}}), nil
	}
	del = func(r *http.Request) (*api.Response, error) {
		key := r.PathValue("key")
		if _, err := s.changeMeta(r, o, func(m map[string]string) (map[string]string, error) {
			if _, ok := m[key]; !ok {
				return nil, api.NotFound("Metadata item was not found.")
			}
			delete(m, key)
			return m, nil
		}); err != nil {
			return nil, err
		}
		return api.JSON(http.StatusOK, nil), nil
	}
	return
}
