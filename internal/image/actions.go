package image

import (
	"net/http"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// deactivate and reactivate hide or restore an active image's data.
func (s *Service) deactivate(r *http.Request) (*api.Response, error) {
	return s.transition(r, "deactivate", "active", "deactivated")
}

func (s *Service) reactivate(r *http.Request) (*api.Response, error) {
	return s.transition(r, "reactivate", "deactivated", "active")
}

func (s *Service) transition(r *http.Request, action, from, to string) (*api.Response, error) {
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, action, im, nil); err != nil {
		return nil, err
	}
	if im.Status == to {
		return api.NoContent(), nil // Glance treats repeats as no-ops
	}
	if im.Status != from {
		// Glance answers 403 here, not 409.
		return nil, api.Forbidden("Not allowed to %s an image in status '%s'.", action, im.Status)
	}
	ok, err := s.setStatus(r.Context(), im.ID, from, to)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, api.Conflict("Image %s changed status concurrently.", im.ID)
	}
	return api.NoContent(), nil
}
