package cloud

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
)

// CleanHostNetwork takes down everything the networking agent of cfg
// built on this host: bridges, VXLAN devices, namespaces, nftables tables
// and DHCP servers named with its prefix. A stopped agent leaves them up
// on purpose (guests keep their network across restarts); this is for
// decommissioning a host and for tests that must leave nothing behind.
func CleanHostNetwork(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	dp, err := dataplane.New(dataplane.Config{
		Prefix: cfg.Network.Agent.Prefix, StateDir: filepath.Join(cfg.DataDir, "dataplane"), Logger: log,
	})
	if err != nil {
		return fmt.Errorf("clean host network: %w", err)
	}
	defer dp.Close()
	if err := dp.Apply(ctx, dataplane.State{}); err != nil {
		return fmt.Errorf("clean host network: %w", err)
	}
	return nil
}
