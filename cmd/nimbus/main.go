// Command nimbus is the one binary of the Nimbus cloud: `nimbus up` runs a
// whole cloud on one machine, `nimbus serve` runs control-plane roles,
// `nimbus manage` holds operator tasks. It parses flags and config and
// hands over to internal/cloud; there is no business logic here.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nimbus-cloud/nimbus/internal/cloud"
	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/internal/logbuf"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "nimbus:", err)
		os.Exit(1)
	}
}

// globals are the flags every subcommand shares.
type globals struct {
	configFile string
	dataDir    string
	logLevel   string
}

func (g *globals) load() (config.Config, error) {
	cfg, err := config.Load(g.configFile)
	if err != nil {
		return cfg, err
	}
	if g.dataDir != "" {
		cfg.DataDir = g.dataDir
	}
	if g.logLevel != "" {
		cfg.LogLevel = g.logLevel
	}
	return cfg, cfg.Validate()
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// newServerLogger is newLogger for long-running servers: lines are batched
// and flushed every 100 ms (warnings and errors at once), so access logs
// do not cost a system call per request. Close the writer on exit.
func newServerLogger(level string) (*slog.Logger, *logbuf.Writer) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	w := logbuf.New(os.Stderr, 100*time.Millisecond)
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})
	return slog.New(logbuf.Handler(h, w, slog.LevelWarn)), w
}

func rootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "nimbus",
		Short:         "Nimbus: an OpenStack-compatible cloud in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.configFile, "config", os.Getenv("NIMBUS_CONFIG"), "YAML configuration file")
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", "", "data directory (overrides the config)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error")
	root.AddCommand(upCmd(g), serveCmd(g), agentCmd(g), storageCmd(g), manageCmd(g), ringCmd(), versionCmd())
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "nimbus", version) },
	}
}

func upCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "up",
		Short: "Run a whole cloud on this machine, bootstrapping it on first start",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			cfg.Roles = nil
			for _, why := range cloud.DefaultAgents(&cfg) {
				fmt.Fprintln(cmd.ErrOrStderr(), "nimbus up:", why)
			}
			cfg.Seed.Default(true)
			return run(cmd, cfg, true)
		},
	}
}

func serveCmd(g *globals) *cobra.Command {
	var roles string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run control-plane roles (" + strings.Join(cloud.AllRoles, ",") + ")",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if roles != "" {
				cfg.Roles = strings.Split(roles, ",")
			}
			return run(cmd, cfg, false)
		},
	}
	cmd.Flags().StringVar(&roles, "roles", "", "comma-separated roles to run (default: all)")
	return cmd
}

func agentCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "agent",
		Short: "Run this hypervisor host's agents (networking data plane), joined to the cloud's bus",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log, logw := newServerLogger(cfg.LogLevel)
			defer logw.Close()
			slog.SetDefault(log)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c, err := cloud.StartAgent(ctx, cfg, log)
			if err != nil {
				return err
			}
			log.Info("nimbus agent running")
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return c.Close(sctx)
		},
	}
}

// run starts the cloud and serves until SIGINT or SIGTERM.
func run(cmd *cobra.Command, cfg config.Config, printAccess bool) error {
	log, logw := newServerLogger(cfg.LogLevel)
	defer logw.Close()
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	c, err := cloud.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	if cfg.Seed.Enabled() {
		if err := c.Seed(ctx); err != nil {
			// The cloud works without its first-run resources.
			log.Error("first-run resources", "err", err)
		}
	}
	if printAccess && c.Identity != nil {
		openrc, clouds, err := c.WriteAdminFiles()
		if err != nil {
			c.Close(context.Background())
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "Nimbus is up in %s.\n", time.Since(start).Round(time.Millisecond))
		fmt.Fprintf(out, "  identity:        %s/v3\n", c.IdentityURL)
		if c.ImageURL != "" {
			fmt.Fprintf(out, "  image:           %s\n", c.ImageURL)
		}
		if c.NetworkURL != "" {
			fmt.Fprintf(out, "  network:         %s\n", c.NetworkURL)
		}
		if c.ComputeURL != "" {
			fmt.Fprintf(out, "  compute:         %s/v2.1\n", c.ComputeURL)
		}
		if c.ObjectURL != "" {
			fmt.Fprintf(out, "  object storage:  %s/v1\n", c.ObjectURL)
		}
		fmt.Fprintf(out, "  data dir:        %s\n", cfg.DataDir)
		fmt.Fprintf(out, "  admin password:  %s/admin-password\n", cfg.DataDir)
		fmt.Fprintf(out, "  openrc:          source %s\n", openrc)
		fmt.Fprintf(out, "  clouds.yaml:     %s (export OS_CLIENT_CONFIG_FILE=%s OS_CLOUD=nimbus)\n", clouds, clouds)
		fmt.Fprintln(out, "Press Ctrl-C to stop.")
	} else {
		log.Info("nimbus serving", "identity", c.IdentityURL, "image", c.ImageURL, "network", c.NetworkURL, "compute", c.ComputeURL, "startup", time.Since(start).String())
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Close(sctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
