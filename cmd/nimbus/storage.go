package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nimbus-cloud/nimbus/internal/cloud"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/node"
)

// storageCmd is `nimbus storage`: this host's Swift storage node, for the
// devices under object.storage.devices_root and the rings the operator
// copied to object.ring_dir (see docs/object-storage.md).
func storageCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "storage",
		Short: "Run this host's object storage node (account, container, object servers and their daemons)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			prefix, suffix, err := cloud.ObjectHashPath(&cfg, false)
			if err != nil {
				return err
			}
			ncfg, err := cloud.StorageNodeConfig(&cfg, prefix, suffix)
			if err != nil {
				return err
			}
			log, logw := newServerLogger(cfg.LogLevel)
			defer logw.Close()
			slog.SetDefault(log)
			ncfg.Logger = log
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ls, err := node.Listen(ncfg)
			if err != nil {
				return err
			}
			n, err := node.Start(ncfg, ls)
			if err != nil {
				return fmt.Errorf("storage node: %w", err)
			}
			<-ctx.Done()
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return n.Close(sctx)
		},
	}
}
