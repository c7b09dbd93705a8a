package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/nimbus-cloud/nimbus/internal/cloud"
	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/internal/dataplane"
	"github.com/nimbus-cloud/nimbus/internal/fernet"
	"github.com/nimbus-cloud/nimbus/internal/identity"
	"github.com/nimbus-cloud/nimbus/internal/store"
)

func manageCmd(g *globals) *cobra.Command {
	m := &cobra.Command{Use: "manage", Short: "Operator tasks: migrations, bootstrap, key rotation, client files"}
	m.AddCommand(dbSyncCmd(g), bootstrapCmd(g), fernetSetupCmd(g), fernetRotateCmd(g), openrcCmd(g), cloudsYAMLCmd(g), networkCleanupCmd(g))
	return m
}

func keyDir(cfg config.Config) string { return filepath.Join(cfg.DataDir, "fernet-keys") }

// openIdentity opens the store and the identity service without serving.
// The handler is the identity API, for tasks that go through it in memory.
func openIdentity(ctx context.Context, cfg config.Config) (*store.DB, *identity.Service, http.Handler, error) {
	apiSvc, err := cloud.IdentityAPI(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	db, err := store.Open(ctx, cfg.DSN())
	if err != nil {
		return nil, nil, nil, err
	}
	log := newLogger(cfg.LogLevel)
	apiSvc.Log = log
	svc, err := identity.New(ctx, identity.Config{
		KeyDir: keyDir(cfg), TokenLifetime: cfg.Identity.TokenLifetime, BcryptCost: cfg.Identity.BcryptCost,
		MaxActiveKeys: cfg.Identity.MaxActiveKeys,
	}, db, apiSvc, log)
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	apiSvc.Tokens = svc
	return db, svc, apiSvc.Handler(svc.Routes()), nil
}

func dbSyncCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "db-sync",
		Short: "Apply database migrations",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			db, _, _, err := openIdentity(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer db.Close()
			v, err := db.SchemaVersion(cmd.Context(), "identity")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "identity schema at version %d (%s)\n", v, db.Dialect())
			return nil
		},
	}
}

func bootstrapCmd(g *globals) *cobra.Command {
	var o identity.BootstrapOptions
	var publicURL, imageURL string
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Create the default domain, admin project, user, roles, region, catalog and configured service users (idempotent)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if o.AdminPassword == "" {
				o.AdminPassword = cfg.Identity.AdminPassword
			}
			if o.AdminPassword == "" {
				return fmt.Errorf("give the admin password with --bootstrap-password or NIMBUS_ADMIN_PASSWORD")
			}
			if publicURL == "" {
				publicURL = "http://" + net.JoinHostPort(cfg.PublicHost, strconv.Itoa(cfg.Identity.Port))
			}
			o.Region = cfg.Region
			o.ResetPassword = true
			o.Catalog = []identity.CatalogEntry{{Type: "identity", Name: "keystone", Description: "Nimbus Identity",
				URLs: map[string]string{"public": publicURL + "/v3", "internal": publicURL + "/v3", "admin": publicURL + "/v3"}}}
			if imageURL != "" {
				o.Catalog = append(o.Catalog, identity.CatalogEntry{Type: "image", Name: "glance", Description: "Nimbus Image",
					URLs: map[string]string{"public": imageURL, "internal": imageURL, "admin": imageURL}})
			}
			db, svc, h, err := openIdentity(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := svc.Bootstrap(cmd.Context(), o); err != nil {
				return err
			}
			// Service users get their configured password back, as the
			// admin does: the config is what their services log in with.
			users := cloud.ServiceUsers(cfg)
			admin := cloud.AdminLogin{User: o.AdminUser, Project: o.AdminProject, Password: o.AdminPassword}
			if err := cloud.EnsureServiceUsers(cmd.Context(), h, admin, users, true); err != nil {
				return err
			}
			for _, u := range users {
				fmt.Fprintf(cmd.OutOrStdout(), "service user %s ready in project %s\n", u.Name, u.Project)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "bootstrap complete")
			return nil
		},
	}
	cmd.Flags().StringVar(&o.AdminPassword, "bootstrap-password", "", "admin password")
	cmd.Flags().StringVar(&o.AdminUser, "bootstrap-username", "admin", "admin user name")
	cmd.Flags().StringVar(&o.AdminProject, "bootstrap-project-name", "admin", "admin project name")
	cmd.Flags().StringVar(&publicURL, "bootstrap-public-url", "", "identity endpoint for the catalog (default from the config)")
	cmd.Flags().StringVar(&imageURL, "image-url", "", "image endpoint to register in the catalog, for image hosts run apart from identity")
	return cmd
}

func fernetSetupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "fernet-setup",
		Short: "Create the token key repository if it is empty",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if err := fernet.Setup(keyDir(cfg)); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "key repository ready:", keyDir(cfg))
			return nil
		},
	}
}

func fernetRotateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "fernet-rotate",
		Short: "Rotate token keys: the staged key becomes primary, the oldest beyond max_active_keys are removed",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if err := fernet.Rotate(keyDir(cfg), cfg.Identity.MaxActiveKeys); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "keys rotated; running servers reload them within 30 s")
			return nil
		},
	}
}

type clientFlags struct {
	creds   cloud.ClientCredentials
	authURL string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.creds.Username, "user", "admin", "user name")
	cmd.Flags().StringVar(&f.creds.Project, "project", "admin", "project name")
	cmd.Flags().StringVar(&f.creds.UserDomain, "user-domain", "Default", "user's domain name")
	cmd.Flags().StringVar(&f.creds.ProjectDomain, "project-domain", "Default", "project's domain name")
	cmd.Flags().StringVar(&f.creds.Password, "password", "", "password to embed (default: prompt when sourced / none)")
	cmd.Flags().StringVar(&f.authURL, "auth-url", "", "identity endpoint (default from the config)")
	cmd.Flags().StringVar(&f.creds.CloudName, "cloud", "nimbus", "cloud name in clouds.yaml")
}

func (f *clientFlags) resolve(g *globals) (cloud.ClientCredentials, error) {
	cfg, err := g.load()
	if err != nil {
		return f.creds, err
	}
	c := f.creds
	c.Region = cfg.Region
	c.AuthURL = f.authURL
	if c.AuthURL == "" {
		c.AuthURL = "http://" + net.JoinHostPort(cfg.PublicHost, strconv.Itoa(cfg.Identity.Port)) + "/v3"
	}
	return c, nil
}

func openrcCmd(g *globals) *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "openrc",
		Short: "Print an openrc file for a user and project",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.resolve(g)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), cloud.OpenRC(c))
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func cloudsYAMLCmd(g *globals) *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use:   "clouds-yaml",
		Short: "Print a clouds.yaml for a user and project",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.resolve(g)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), cloud.CloudsYAML(c))
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func networkCleanupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "network-cleanup",
		Short: "Remove every bridge, namespace, nftables table and DHCP server the networking agent built on this host (its prefix)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if err := cloud.CleanHostNetwork(cmd.Context(), cfg, newLogger(cfg.LogLevel)); err != nil {
				return err
			}
			prefix := cfg.Network.Agent.Prefix
			if prefix == "" {
				prefix = dataplane.DefaultPrefix
			}
			fmt.Fprintln(cmd.OutOrStdout(), "host network state removed for prefix", prefix)
			return nil
		},
	}
}
