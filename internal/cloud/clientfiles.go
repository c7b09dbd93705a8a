package cloud

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ClientCredentials are what a client needs to authenticate as a user on a
// project. An empty Password makes the openrc prompt for it, as Horizon's
// downloadable openrc does.
type ClientCredentials struct {
	AuthURL       string // identity endpoint, e.g. http://127.0.0.1:5000/v3
	Region        string
	Username      string
	Password      string
	UserDomain    string
	Project       string
	ProjectDomain string
	CloudName     string // the clouds.yaml entry name
}

func (c ClientCredentials) withDefaults() ClientCredentials {
	if c.UserDomain == "" {
		c.UserDomain = "Default"
	}
	if c.ProjectDomain == "" {
		c.ProjectDomain = "Default"
	}
	if c.CloudName == "" {
		c.CloudName = "nimbus"
	}
	return c
}

// shellQuote quotes s for POSIX sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// OpenRC renders an openrc shell file for the python-openstackclient.
func OpenRC(c ClientCredentials) string {
	c = c.withDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, "# Nimbus credentials for user %s on project %s. Use: source this file\n", c.Username, c.Project)
	for _, kv := range [][2]string{
		{"OS_AUTH_URL", c.AuthURL}, {"OS_IDENTITY_API_VERSION", "3"}, {"OS_AUTH_TYPE", "password"},
		{"OS_REGION_NAME", c.Region}, {"OS_INTERFACE", "public"},
		{"OS_USERNAME", c.Username}, {"OS_USER_DOMAIN_NAME", c.UserDomain},
		{"OS_PROJECT_NAME", c.Project}, {"OS_PROJECT_DOMAIN_NAME", c.ProjectDomain},
	} {
		fmt.Fprintf(&b, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	b.WriteString("unset OS_TENANT_ID OS_TENANT_NAME OS_PROJECT_ID OS_TOKEN OS_CLOUD\n")
	if c.Password != "" {
		fmt.Fprintf(&b, "export OS_PASSWORD=%s\n", shellQuote(c.Password))
	} else {
		b.WriteString("printf 'Password for %s: ' \"$OS_USERNAME\"\nread -sr OS_PASSWORD\necho\nexport OS_PASSWORD\n")
	}
	return b.String()
}

// CloudsYAML renders a clouds.yaml with one cloud entry.
func CloudsYAML(c ClientCredentials) string {
	c = c.withDefaults()
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	var b strings.Builder
	fmt.Fprintf(&b, "clouds:\n  %s:\n    region_name: %s\n    interface: public\n    identity_api_version: 3\n    auth_type: password\n    auth:\n", c.CloudName, q(c.Region))
	fmt.Fprintf(&b, "      auth_url: %s\n      username: %s\n      user_domain_name: %s\n      project_name: %s\n      project_domain_name: %s\n",
		q(c.AuthURL), q(c.Username), q(c.UserDomain), q(c.Project), q(c.ProjectDomain))
	if c.Password != "" {
		fmt.Fprintf(&b, "      password: %s\n", q(c.Password))
	}
	return b.String()
}

// AdminCredentials are the bootstrap admin's credentials for this cloud.
func (c *Cloud) AdminCredentials() ClientCredentials {
	return ClientCredentials{AuthURL: c.IdentityURL + "/v3", Region: c.Config.Region, Username: "admin",
		Password: c.AdminPassword, Project: "admin"}
}

// WriteAdminFiles writes admin-openrc.sh and clouds.yaml (mode 0600) into
// the data dir and returns their paths.
func (c *Cloud) WriteAdminFiles() (openrc, clouds string, err error) {
	creds := c.AdminCredentials()
	openrc = filepath.Join(c.Config.DataDir, "admin-openrc.sh")
	clouds = filepath.Join(c.Config.DataDir, "clouds.yaml")
	if err := os.WriteFile(openrc, []byte(OpenRC(creds)), 0o600); err != nil {
		return "", "", fmt.Errorf("write openrc: %w", err)
	}
	if err := os.WriteFile(clouds, []byte(CloudsYAML(creds)), 0o600); err != nil {
		return "", "", fmt.Errorf("write clouds.yaml: %w", err)
	}
	return openrc, clouds, nil
}
