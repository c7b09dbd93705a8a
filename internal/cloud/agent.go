package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/nimbus-cloud/nimbus/internal/config"
)

// StartAgent runs the agents of a hypervisor host (`nimbus agent`): the
// networking agent, and the compute agent when compute.agent.enabled. Agents never touch the database; they join
// the cloud's message bus (cfg.NATS, required) and read what they need
// through the APIs as their service users.
func StartAgent(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Cloud, err error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.NATS == "" {
		return nil, errors.New("nimbus agent joins the cloud's message bus: set nats (NIMBUS_NATS) to the controllers' NATS URL")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c := &Cloud{Config: cfg, log: log, runCtx: runCtx, cancel: cancel}
	defer func() {
		if err != nil {
			c.Close(context.Background())
		}
	}()
	if err := c.startBus(ctx); err != nil {
		return nil, err
	}
	c.Config.Network.Agent.Enabled.Default(true)
	if err := c.startNetworkAgent(ctx); err != nil {
		return nil, err
	}
	if err := c.startComputeAgent(ctx); err != nil {
		return nil, err
	}
	if err := c.startVolumeAgent(ctx); err != nil {
		return nil, err
	}
	return c, nil
}
