package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/nimbus-cloud/nimbus/internal/store"
)

// CatalogEntry is a service and its endpoint URLs, registered by bootstrap.
type CatalogEntry struct {
	Type, Name, Description string
	// URLs maps interface (public, internal, admin) to URL.
	URLs map[string]string
}

// BootstrapOptions says what `nimbus manage bootstrap` creates.
type BootstrapOptions struct {
	AdminUser     string
	AdminPassword string
	AdminProject  string
	Region        string
	Catalog       []CatalogEntry
	// ResetPassword sets the admin password even if the user exists, as
	// keystone-manage bootstrap does when given one.
	ResetPassword bool
}

// Bootstrap creates, idempotently, what a new cloud needs: the default
// domain, the admin project and user, the admin / member / reader roles
// (admin implies member implies reader) plus service and ResellerAdmin, the
// admin's role on the project and the system, the region and the catalog.
// Running it again converges to the same state without duplicating.
func (s *Service) Bootstrap(ctx context.Context, o BootstrapOptions) error {
	if o.AdminUser == "" {
		o.AdminUser = "admin"
	}
	if o.AdminProject == "" {
		o.AdminProject = "admin"
	}
	if o.Region == "" {
		o.Region = "RegionOne"
	}
	if o.AdminPassword == "" {
		return errors.New("bootstrap: an admin password is required")
	}
	if _, err := s.getDomain(ctx, s.db, DefaultDomainID); errors.Is(err, store.ErrNotFound) {
		if err := s.createProjectRow(ctx, &project{ID: DefaultDomainID, Name: "Default", DomainID: rootDomainID, IsDomain: true,
			Enabled: true, Description: "The default domain", Extra: "{}"}); err != nil {
			return fmt.Errorf("bootstrap default domain: %w", err)
		}
	} else if err != nil {
		return err
	}
	projectID, err := s.ensureRow(ctx, `SELECT id FROM projects WHERE domain_id = ? AND name = ?`, []any{DefaultDomainID, o.AdminProject}, func(id string) error {
		return s.createProjectRow(ctx, &project{ID: id, Name: o.AdminProject, DomainID: DefaultDomainID, ParentID: DefaultDomainID,
			Enabled: true, Description: "Bootstrap project for initializing the cloud.", Extra: "{}"})
	})
	if err != nil {
		return fmt.Errorf("bootstrap admin project: %w", err)
	}
	// Hashing is slow by design, so it is only done when a password is
	// going to be stored; a restart with the cloud in place skips it.
	userID, err := s.ensureRow(ctx, `SELECT id FROM users WHERE domain_id = ? AND name = ?`, []any{DefaultDomainID, o.AdminUser}, func(id string) error {
		hash, err := s.hashPassword(o.AdminPassword)
		if err != nil {
			return err
		}
		ts := store.FormatTime(now())
		return s.db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO users (id, domain_id, name, enabled, default_project_id, password_hash, password_created_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				id, DefaultDomainID, o.AdminUser, true, projectID, hash, ts, ts); err != nil {
				return err
			}
			return recordPasswordHistory(ctx, tx, id, hash, ts)
		})
	})
	if err != nil {
		return fmt.Errorf("bootstrap admin user: %w", err)
	}
	if o.ResetPassword {
		hash, err := s.hashPassword(o.AdminPassword)
		if err != nil {
			return err
		}
		if err := s.db.InTx(ctx, func(tx *store.Tx) error { return setPassword(ctx, tx, userID, hash, store.FormatTime(now())) }); err != nil {
			return fmt.Errorf("bootstrap admin password: %w", err)
		}
		if _, err := s.db.Exec(ctx, `UPDATE users SET enabled = ? WHERE id = ?`, true, userID); err != nil {
			return err
		}
	}
	roleIDs := map[string]string{}
	for _, name := range []string{"admin", "member", "reader", "service", "ResellerAdmin"} {
		id, err := s.ensureRow(ctx, `SELECT id FROM roles WHERE name = ? AND domain_id = ?`, []any{name, globalRoleDomain}, func(id string) error {
			return s.insertRole(ctx, &role{ID: id, Name: name, Options: "{}", Extra: "{}"})
		})
		if err != nil {
			return fmt.Errorf("bootstrap role %s: %w", name, err)
		}
		roleIDs[name] = id
	}
	for _, pair := range [][2]string{{"admin", "member"}, {"member", "reader"}} {
		_, err := s.db.Exec(ctx, `INSERT INTO implied_roles (prior_role_id, implied_role_id) VALUES (?, ?)`, roleIDs[pair[0]], roleIDs[pair[1]])
		if err != nil && !store.IsConflict(err) {
			return fmt.Errorf("bootstrap implied role: %w", err)
		}
	}
	for _, a := range []assignment{
		{Type: userProject, ActorID: userID, TargetID: projectID, RoleID: roleIDs["admin"]},
		{Type: userSystem, ActorID: userID, TargetID: systemTarget, RoleID: roleIDs["admin"]},
	} {
		_, err := s.db.Exec(ctx, `INSERT INTO assignments (type, actor_id, target_id, role_id, inherited) VALUES (?, ?, ?, ?, ?)`, a.Type, a.ActorID, a.TargetID, a.RoleID, false)
		if err != nil && !store.IsConflict(err) {
			return fmt.Errorf("bootstrap admin assignment: %w", err)
		}
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO regions (id, description) VALUES (?, ?)`, o.Region, ""); err != nil && !store.IsConflict(err) {
		return fmt.Errorf("bootstrap region: %w", err)
	}
	for _, c := range o.Catalog {
		if err := s.ensureCatalogEntry(ctx, o.Region, c); err != nil {
			return fmt.Errorf("bootstrap %s service: %w", c.Type, err)
		}
	}
	s.changed()
	return nil
}

// ensureRow returns the id the query finds, or creates a row with a new id.
func (s *Service) ensureRow(ctx context.Context, query string, args []any, create func(id string) error) (string, error) {
	var id string
	err := s.db.QueryRow(ctx, query, args...).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	id = newID()
	if err := create(id); err != nil {
		return "", err
	}
	return id, nil
}

// ensureCatalogEntry registers a service by type with one endpoint per
// interface in the region, correcting URLs that changed.
func (s *Service) ensureCatalogEntry(ctx context.Context, region string, c CatalogEntry) error {
	extra := encodeExtra(map[string]any{"name": c.Name, "description": c.Description})
	serviceID, err := s.ensureRow(ctx, `SELECT id FROM services WHERE type = ?`, []any{c.Type}, func(id string) error {
		_, err := s.db.Exec(ctx, `INSERT INTO services (id, type, enabled, extra) VALUES (?, ?, ?, ?)`, id, c.Type, true, extra)
		return err
	})
	if err != nil {
		return err
	}
	for iface, url := range c.URLs {
		var id, have string
		err := s.db.QueryRow(ctx, `SELECT id, url FROM endpoints WHERE service_id = ? AND interface = ? AND region_id = ?`, serviceID, iface, region).Scan(&id, &have)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = s.db.Exec(ctx, `INSERT INTO endpoints (id, service_id, interface, url, region_id, enabled) VALUES (?, ?, ?, ?, ?, ?)`,
				newID(), serviceID, iface, url, region, true)
		case err == nil && have != url:
			_, err = s.db.Exec(ctx, `UPDATE endpoints SET url = ? WHERE id = ?`, url, id)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
