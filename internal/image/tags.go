package image

import (
	"net/http"
	"slices"
	"unicode/utf8"

	"github.com/nimbus-cloud/nimbus/internal/api"
)

// maxTags is Glance's image_tag_quota default.
const maxTags = 128

func validTag(t string) error {
	if t == "" || utf8.RuneCountInString(t) > 255 {
		return api.BadRequest("Invalid tag: tags are 1 to 255 characters long.")
	}
	return nil
}

func (s *Service) addTag(r *http.Request) (*api.Response, error) {
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "modify_image", im, nil); err != nil {
		return nil, err
	}
	tag := r.PathValue("tag")
	if err := validTag(tag); err != nil {
		return nil, err
	}
	if slices.Contains(im.Tags, tag) {
		return api.NoContent(), nil
	}
	if len(im.Tags) >= maxTags {
		return nil, api.Errorf(http.StatusRequestEntityTooLarge, "Maximum number of tags (%d) exceeded.", maxTags)
	}
	im.Tags = append(im.Tags, tag)
	if err := s.update(r.Context(), im); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}

func (s *Service) deleteTag(r *http.Request) (*api.Response, error) {
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "modify_image", im, nil); err != nil {
		return nil, err
	}
	tag := r.PathValue("tag")
	i := slices.Index(im.Tags, tag)
	if i < 0 {
		return nil, api.NotFound("Tag %s not found.", tag)
	}
	im.Tags = slices.Delete(im.Tags, i, i+1)
	if err := s.update(r.Context(), im); err != nil {
		return nil, err
	}
	return api.NoContent(), nil
}
