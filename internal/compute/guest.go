package compute

import (
	"context"
	"errors"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// GuestInfo is what the metadata service tells a guest about itself: the
// spec agents build from, plus the EC2-style identifiers Nova derives
// from its database row.
type GuestInfo struct {
	InstanceSpec
	// Seq is the instance's integer number, which EC2 ids (i-%08x) are
	// made from, as Nova makes them from instances.id.
	Seq int
	// ReservationID is the r-... id of the create request.
	ReservationID string
}

// LookupGuest loads a live instance for the metadata service, which may
// run in a process without the compute API (Nova's metadata API reads the
// database the same way). A missing or deleted instance is ErrNotFound.
func LookupGuest(ctx context.Context, q store.Querier, id string) (GuestInfo, error) {
	i, err := store.QueryOne(ctx, q, scanInstance, `SELECT `+instanceCols+` FROM compute_instances WHERE id = ? AND deleted = 0`, id)
	if errors.Is(err, store.ErrNotFound) {
		return GuestInfo{}, ErrNotFound
	}
	if err != nil {
		return GuestInfo{}, fmt.Errorf("load instance %s: %w", id, err)
	}
	// specOf reads only the row and the database, never the service.
	spec, err := (*Service)(nil).specOf(ctx, q, i)
	if err != nil {
		return GuestInfo{}, err
	}
	return GuestInfo{InstanceSpec: spec, Seq: i.Seq, ReservationID: i.ReservationID}, nil
}
