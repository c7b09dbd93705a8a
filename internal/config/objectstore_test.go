package config

import (
	"testing"
	"time"
)

// Container sync realms are read as Swift's container-sync-realms.conf
// lays them out: realm → key, key2, clusters.
func TestContainerSyncFromYAML(t *testing.T) {
	cfg, err := loadYAML(t, `
object:
  storage:
    container_sync_interval: 20s
  container_sync:
    current: //r1/c1
    allowed_sync_hosts: [10.0.0.1]
    realms:
      r1:
        key: k
        key2: k2
        clusters:
          c1: https://a.example.com/v1/
`)
	if err != nil {
		t.Fatal(err)
	}
	cs := cfg.Object.ContainerSync
	r := cs.Realms["r1"]
	if cs.Current != "//r1/c1" || len(cs.AllowedSyncHosts) != 1 || r.Key != "k" || r.Key2 != "k2" ||
		r.Clusters["c1"] != "https://a.example.com/v1/" || cfg.Object.Storage.ContainerSyncInterval != 20*time.Second {
		t.Fatalf("container sync config: %+v, interval %v", cs, cfg.Object.Storage.ContainerSyncInterval)
	}
}

// domain_remap is off by default; YAML sets all of Swift's options and
// NIMBUS_OBJECT_STORAGE_DOMAIN, a comma-separated list, the domains.
func TestDomainRemapConfig(t *testing.T) {
	if d := Default().Object.DomainRemap.StorageDomain; len(d) != 0 {
		t.Fatalf("default storage domains %q, want none", d)
	}
	cfg, err := loadYAML(t, `
object:
  domain_remap:
    storage_domain: [example.net, .example.org]
    path_root: v1
    reseller_prefixes: [AUTH, SERVICE]
    default_reseller_prefix: AUTH
    mangle_client_paths: true
`)
	if err != nil {
		t.Fatal(err)
	}
	dr := cfg.Object.DomainRemap
	if len(dr.StorageDomain) != 2 || dr.StorageDomain[1] != ".example.org" || dr.PathRoot != "v1" ||
		len(dr.ResellerPrefixes) != 2 || dr.DefaultResellerPrefix != "AUTH" || !dr.MangleClientPaths {
		t.Fatalf("domain_remap config %+v", dr)
	}
	env := map[string]string{"NIMBUS_OBJECT_STORAGE_DOMAIN": " a.example, ,b.example"}
	if err := cfg.applyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if d := cfg.Object.DomainRemap.StorageDomain; len(d) != 2 || d[0] != "a.example" || d[1] != "b.example" {
		t.Fatalf("storage domains from env %q", d)
	}
}
