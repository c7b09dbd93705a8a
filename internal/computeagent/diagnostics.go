package computeagent

import (
	"context"
	"errors"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// diagnostics answers the API's diagnostics call from the driver.
func (a *Agent) diagnostics(ctx context.Context, req compute.DiagnosticsRequest) (hypervisor.Diagnostics, error) {
	dg, ok := a.cfg.Driver.(hypervisor.Diagnoser)
	if !ok {
		return hypervisor.Diagnostics{}, &bus.RemoteError{Code: compute.CodeNotImplemented, Message: "this host's driver reports no diagnostics"}
	}
	d, err := dg.Diagnostics(ctx, req.InstanceID)
	if errors.Is(err, hypervisor.ErrNotFound) {
		return d, fmt.Errorf("no guest %s on %s: %w", req.InstanceID, a.cfg.Host, err)
	}
	return d, err
}
