package network

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// creation is a validated create request: run writes it in a
// transaction and returns the created resource. run may be called again
// when the transaction lost a race.
type creation struct {
	run func(tx *store.Tx) (obj, error)
}

// decodeItem decodes one resource body strictly.
func decodeItem[T any](raw json.RawMessage) (T, error) {
	var v T
	if err := api.DecodeBytes(raw, &v, true); err != nil {
		var e *api.Error
		if errors.As(err, &e) {
			return v, invalidInput("%s", strings.TrimSuffix(e.Message, "."))
		}
		return v, err
	}
	return v, nil
}

// createHandler serves POST on a collection, for one resource
// ({"network": {...}}) or, as Neutron's bulk create, several
// ({"networks": [...]}) created all in one transaction or none.
func createHandler[T any](s *Service, singular, plural string, prepare func(*http.Request, T) (*creation, error)) api.HandlerFunc {
	return func(r *http.Request) (*api.Response, error) {
		var env map[string]json.RawMessage
		if err := api.DecodeJSON(r, &env); err != nil {
			return nil, err
		}
		var raws []json.RawMessage
		bulk := false
		switch {
		case len(env) != 1:
			return nil, badRequest(singular, "Resource body required")
		case env[singular] != nil:
			raws = []json.RawMessage{env[singular]}
		case env[plural] != nil:
			bulk = true
			if err := json.Unmarshal(env[plural], &raws); err != nil || len(raws) == 0 {
				return nil, badRequest(plural, "Resources required")
			}
		default:
			return nil, badRequest(singular, "Resource body required")
		}
		var steps []*creation
		for _, raw := range raws {
			b, err := decodeItem[T](raw)
			if err != nil {
				return nil, err
			}
			c, err := prepare(r, b)
			if err != nil {
				return nil, err
			}
			steps = append(steps, c)
		}
		var out []obj
		err := s.writeTx(r.Context(), func(tx *store.Tx) error {
			out = out[:0]
			for _, c := range steps {
				o, err := c.run(tx)
				if err != nil {
					return err
				}
				out = append(out, o)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for _, o := range out {
			id, _ := o["id"].(string)
			s.notify(r.Context(), Event{Resource: singular, ID: id, Action: "create"})
		}
		if bulk {
			return api.JSON(http.StatusCreated, obj{plural: out}), nil
		}
		return api.JSON(http.StatusCreated, obj{singular: out[0]}), nil
	}
}
