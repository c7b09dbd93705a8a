package image

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/api"

	"github.com/nimbus-cloud/nimbus/internal/image/imagestore"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

// location is one copy of an image's data: where a store keeps it, plus
// the free-form metadata clients may attach through the locations API.
type location struct {
	imagestore.Location
	Metadata map[string]any
}

func scanLocation(row store.Scanner) (string, location, error) {
	var (
		imageID, meta string
		loc           location
	)
	if err := row.Scan(&imageID, &loc.Store, &loc.URL, &meta); err != nil {
		return "", loc, err
	}
	if err := json.Unmarshal([]byte(meta), &loc.Metadata); err != nil {
		return "", loc, fmt.Errorf("image %s location metadata: %w", imageID, err)
	}
	return imageID, loc, nil
}

// loadLocations fills the Locations of images with one query.
func (s *Service) loadLocations(ctx context.Context, images ...*image) error {
	if len(images) == 0 {
		return nil
	}
	byID := make(map[string]*image, len(images))
	args := make([]any, 0, len(images))
	for _, im := range images {
		im.Locations = nil
		byID[im.ID] = im
		args = append(args, im.ID)
	}
	rows, err := s.db.Query(ctx, `SELECT image_id, store, url, metadata FROM image_locations WHERE image_id IN (?`+
		strings.Repeat(", ?", len(args)-1)+`) ORDER BY image_id, position`, args...)
	if err != nil {
		return fmt.Errorf("load image locations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		id, loc, err := scanLocation(rows)
		if err != nil {
			return err
		}
		byID[id].Locations = append(byID[id].Locations, loc)
	}
	return rows.Err()
}

// addLocation appends loc to an image's locations inside tx.
func addLocation(ctx context.Context, tx store.Querier, imageID string, loc location) error {
	var next int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(position) + 1, 0) FROM image_locations WHERE image_id = ?`, imageID).Scan(&next); err != nil {
		return fmt.Errorf("add image location: %w", err)
	}
	meta := loc.Metadata
	if meta == nil {
		meta = map[string]any{}
	}
	_, err := tx.Exec(ctx, `INSERT INTO image_locations (image_id, position, store, url, metadata) VALUES (?, ?, ?, ?, ?)`,
		imageID, next, loc.Store, loc.URL, jsonText(meta))
	if err != nil {
		return fmt.Errorf("add image location: %w", err)
	}
	return nil
}

// storeIDs is the image's "stores" attribute: the ids of the stores
// holding its data, sorted and comma separated as Glance shows them.
func storeIDs(im *image) string {
	var ids []string
	for _, l := range im.Locations {
		if l.Store != "" && !slices.Contains(ids, l.Store) {
			ids = append(ids, l.Store)
		}
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// hasStore reports whether the image has a copy in store id.
func hasStore(im *image, id string) bool {
	return slices.ContainsFunc(im.Locations, func(l location) bool { return l.Store == id })
}

// deleteData removes the data behind locs from writable stores. It runs
// after the records are gone, so a failure leaves an orphan that no image
// points to (logged) rather than an image without data.
func (s *Service) deleteData(ctx context.Context, imageID string, locs []location) {
	for _, l := range locs {
		st, ok := s.cfg.Stores[l.Store]
		if !ok || st.ReadOnly() {
			continue
		}
		if err := st.Delete(ctx, l.Location); err != nil {
			s.log.Warn("delete image data", "image_id", imageID, "store", l.Store, "err", err)
		}
	}
}

// locationValue is one location as clients send it in a patch.
type locationValue struct {
	URL            string         `json:"url"`
	Metadata       map[string]any `json:"metadata"`
	ValidationData *struct {
		Checksum  *string `json:"checksum"`
		HashAlgo  *string `json:"os_hash_algo"`
		HashValue *string `json:"os_hash_value"`
	} `json:"validation_data,omitempty"`
}

// hashLengths are the hex digest lengths of the os_hash_algo values
// Glance accepts in validation data.
var hashLengths = map[string]int{"sha512": 128, "sha384": 96, "sha256": 64, "sha1": 40, "md5": 32}

// locationPatch accumulates the location operations of one PATCH, applied
// to a copy of the image's state and saved together at the end.
type locationPatch struct {
	s       *Service
	im      *image
	status  string
	locs    []location
	removed []location
	changed bool
}

// locationPath parses "/locations", "/locations/-" and "/locations/N";
// ok is false for any other path. index is -1 for "-" and for the whole
// list.
func locationPath(raw json.RawMessage) (index int, whole, ok bool, err error) {
	var p string
	if json.Unmarshal(raw, &p) != nil {
		var parts []string
		if json.Unmarshal(raw, &parts) != nil || len(parts) == 0 || parts[0] != "locations" {
			return 0, false, false, nil
		}
		p = "/" + strings.Join(parts, "/")
	}
	rest, found := strings.CutPrefix(p, "/locations")
	if !found || (rest != "" && !strings.HasPrefix(rest, "/")) {
		return 0, false, false, nil
	}
	switch rest {
	case "":
		return -1, true, true, nil
	case "/-":
		return -1, false, true, nil
	}
	n, convErr := strconv.Atoi(rest[1:])
	if convErr != nil || n < 0 {
		return 0, false, true, api.BadRequest("Invalid location index '%s'.", rest[1:])
	}
	return n, false, true, nil
}

// apply performs one patch operation on the locations.
func (lp *locationPatch) apply(ctx context.Context, op string, index int, whole bool, value json.RawMessage) error {
	switch {
	case op == "add" && !whole:
		var v locationValue
		if err := json.Unmarshal(value, &v); err != nil {
			return api.BadRequest("Invalid location: %v", err)
		}
		return lp.add(ctx, index, v)
	case op == "replace" && whole:
		var vs []locationValue
		if err := json.Unmarshal(value, &vs); err != nil {
			return api.BadRequest("Invalid locations: %v", err)
		}
		return lp.replace(ctx, vs)
	case op == "remove" && !whole:
		if index < 0 || index >= len(lp.locs) {
			return api.BadRequest("Invalid location index %d.", index)
		}
		if len(lp.locs) == 1 {
			return api.Forbidden("Cannot remove last location in the image.")
		}
		lp.removed = append(lp.removed, lp.locs[index])
		lp.locs = slices.Delete(lp.locs, index, index+1)
		lp.changed = true
		return nil
	}
	return api.BadRequest("Invalid operation '%s' on image locations.", op)
}

// add checks and inserts one location. The first location of a queued
// image makes it active with the size the location's server reports.
func (lp *locationPatch) add(ctx context.Context, index int, v locationValue) error {
	if lp.status != "queued" && lp.status != "active" {
		return api.Conflict("Locations can only be added to queued or active images, not %s.", lp.status)
	}
	loc, err := lp.s.checkLocation(ctx, v)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(lp.locs, func(l location) bool { return l.URL == loc.URL }) {
		return api.BadRequest("Duplicate location %s.", redactURL(loc.URL))
	}
	if err := lp.validate(v); err != nil {
		return err
	}
	if lp.status == "queued" {
		size, err := lp.s.locationSize(ctx, loc.URL)
		if err != nil {
			return err
		}
		lp.im.Size = &size
		lp.status = "active"
	}
	if index < 0 || index > len(lp.locs) {
		index = len(lp.locs)
	}
	lp.locs = slices.Insert(lp.locs, index, loc)
	lp.changed = true
	return nil
}

// replace accepts the same set of URLs with new metadata (Glance refuses
// replacing a URL or dropping one this way), or a first set for a
// queued image.
func (lp *locationPatch) replace(ctx context.Context, vs []locationValue) error {
	if len(lp.locs) == 0 {
		for _, v := range vs {
			if err := lp.add(ctx, -1, v); err != nil {
				return err
			}
		}
		return nil
	}
	if len(vs) != len(lp.locs) {
		return api.BadRequest("Replacing image locations may change their metadata only, not add or remove locations.")
	}
	next := make([]location, len(vs))
	for i, v := range vs {
		j := slices.IndexFunc(lp.locs, func(l location) bool { return l.URL == v.URL })
		if j < 0 {
			return api.BadRequest("Replacing image locations may change their metadata only, not their URLs.")
		}
		next[i] = lp.locs[j]
		next[i].Metadata = v.Metadata
	}
	lp.locs = next
	lp.changed = true
	return nil
}

// validate applies a location's validation data: it sets the image's
// checksum and hash when it has none and must match them otherwise (a
// mismatch is a conflict, checked before the values' form, as Glance).
func (lp *locationPatch) validate(v locationValue) error {
	vd := v.ValidationData
	if vd == nil {
		return nil
	}
	im := lp.im
	mismatch := func(have *string, want *string) bool { return have != nil && want != nil && *have != *want }
	if mismatch(im.Checksum, vd.Checksum) || mismatch(im.HashAlgo, vd.HashAlgo) || mismatch(im.HashValue, vd.HashValue) {
		return api.Conflict("Validation data of the new location does not match the image's checksum and hash.")
	}
	if vd.Checksum != nil && !isHex(*vd.Checksum, 32) {
		return api.BadRequest("Invalid checksum in validation data.")
	}
	if (vd.HashAlgo == nil) != (vd.HashValue == nil) {
		return api.BadRequest("Validation data needs both os_hash_algo and os_hash_value.")
	}
	if vd.HashAlgo != nil {
		n, ok := hashLengths[*vd.HashAlgo]
		if !ok || !isHex(*vd.HashValue, n) {
			return api.BadRequest("Invalid os_hash_algo or os_hash_value in validation data.")
		}
	}
	if im.Checksum == nil {
		im.Checksum = vd.Checksum
	}
	if im.HashAlgo == nil {
		im.HashAlgo, im.HashValue = vd.HashAlgo, vd.HashValue
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// checkLocation maps a client's URL to the store that can read it: only
// http(s) URLs, read through the (SSRF-guarded) HTTP store, are accepted
// from clients; file:// and other schemes would let them point an image
// at the service's own files.
func (s *Service) checkLocation(ctx context.Context, v locationValue) (location, error) {
	u, err := url.Parse(v.URL)
	if err != nil || v.URL == "" {
		return location{}, api.BadRequest("Invalid location URL.")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return location{}, api.BadRequest("Invalid location: scheme %q is not supported (only http and https).", u.Scheme)
	}
	hs := s.httpStore()
	if hs == nil {
		return location{}, api.BadRequest("Invalid location: no store reads http(s) URLs here.")
	}
	return location{Location: imagestore.Location{Store: hs.ID(), URL: v.URL}, Metadata: v.Metadata}, nil
}

// httpStore is the read-only HTTP store, if one is configured.
func (s *Service) httpStore() *imagestore.HTTP {
	for _, id := range slices.Sorted(maps.Keys(s.cfg.Stores)) {
		if hs, ok := s.cfg.Stores[id].(*imagestore.HTTP); ok {
			return hs
		}
	}
	return nil
}

func (s *Service) locationSize(ctx context.Context, rawURL string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := s.httpStore().Size(ctx, rawURL)
	if errors.Is(err, imagestore.ErrForbiddenTarget) {
		return 0, api.BadRequest("Invalid location: %v", err)
	}
	if err != nil {
		return 0, api.BadRequest("Invalid location: the image data could not be reached (%v).", err)
	}
	return n, nil
}

// save writes the patched locations, and the status, size and digests
// they set, within tx, if the image is still in the status the patch
// started from.
func (lp *locationPatch) save(ctx context.Context, tx *store.Tx, from string) error {
	im := lp.im
	res, err := tx.Exec(ctx, `UPDATE images SET status = ?, size = ?, checksum = ?, os_hash_algo = ?, os_hash_value = ?, updated_at = ?
		WHERE id = ? AND status = ?`, lp.status, im.Size, im.Checksum, im.HashAlgo, im.HashValue, store.FormatTime(time.Now()), im.ID, from)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return api.Conflict("Image %s changed status concurrently.", im.ID)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM image_locations WHERE image_id = ?`, im.ID); err != nil {
		return err
	}
	for _, l := range lp.locs {
		if err := addLocation(ctx, tx, im.ID, l); err != nil {
			return err
		}
	}
	return nil
}
