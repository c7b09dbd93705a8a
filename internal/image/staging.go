package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/image/imagestore"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// The staging area holds data on its way into the stores: what clients
// upload for a glance-direct import, and what the service fetches for
// web-download, glance-download and copy-image. It is a filesystem store
// of its own, so staged data is complete and durable once it appears and
// a crash leaves only temp files that are cleaned up on start.

// stageImage is PUT /v2/images/{id}/stage: queued → uploading, the data
// kept in staging until POST /import moves it into the stores.
func (s *Service) stageImage(r *http.Request) (*api.Response, error) {
	if s.staging == nil {
		return nil, api.NotFound("The staging area is not configured; the import API is disabled.")
	}
	im, err := s.loadImage(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(r, "upload_image", im, nil); err != nil {
		return nil, err
	}
	if err := checkTransfer(r, im, "uploading"); err != nil {
		return nil, err
	}
	limit, err := s.stagingAllowance(r.Context(), im.Owner, r.ContentLength)
	if err != nil {
		return nil, err
	}
	if err := s.beginTransfer(r.Context(), im.ID, "uploading"); err != nil {
		return nil, err
	}
	bg := context.WithoutCancel(r.Context())
	stop := s.keepAlive(bg, `UPDATE images SET upload_heartbeat = ? WHERE id = ? AND status = 'uploading'`, im.ID)
	n, err := s.stage(r.Context(), im.ID, r.Body, limit)
	stop()
	if err == nil && r.ContentLength >= 0 && n != r.ContentLength {
		err = fmt.Errorf("%w: got %d bytes, expected %d", errSizeMismatch, n, r.ContentLength)
		s.discardStaged(bg, im.ID)
	}
	if err != nil {
		if _, rerr := s.setStatus(bg, im.ID, "uploading", "queued"); rerr != nil {
			s.log.Error("revert image to queued", "image_id", im.ID, "err", rerr)
		}
		return nil, s.dataError(r, im.ID, err, limit)
	}
	// The image may have been deleted meanwhile: then the data goes too.
	if _, err := s.getImage(bg, im.ID); errors.Is(err, store.ErrNotFound) {
		s.discardStaged(bg, im.ID)
		return nil, api.Errorf(http.StatusGone, "Image %s was deleted during the upload.", im.ID)
	}
	return api.NoContent(), nil
}

// stage writes src, capped at limit bytes, as the image's staged data.
func (s *Service) stage(ctx context.Context, imageID string, src io.Reader, limit int64) (int64, error) {
	_, n, err := s.staging.Put(ctx, imageID, &capReader{r: src, max: limit})
	return n, err
}

// staged reports whether complete staged data exists for the image.
func (s *Service) staged(imageID string) bool {
	if s.staging == nil {
		return false
	}
	_, err := os.Stat(s.stagedPath(imageID))
	return err == nil
}

// openStaged opens the image's staged data.
func (s *Service) openStaged(ctx context.Context, imageID string) (io.ReadCloser, error) {
	return s.staging.Get(ctx, s.stagedLocation(imageID), 0, -1)
}

func (s *Service) stagedLocation(imageID string) imagestore.Location {
	return imagestore.Location{Store: "staging", URL: "file://" + s.stagedPath(imageID)}
}

// discardStaged removes the image's staged data, if any.
func (s *Service) discardStaged(ctx context.Context, imageID string) {
	if s.staging == nil {
		return
	}
	if err := s.staging.Delete(ctx, s.stagedLocation(imageID)); err != nil {
		s.log.Warn("remove staged image data", "image_id", imageID, "err", err)
	}
}
