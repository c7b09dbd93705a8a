package config

import (
	"strings"
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

// A one-machine cloud has two storage policies by default so that
// clients (and Swift's cross-policy functional tests) can choose, with
// policy 0 still answering to its old name; a cluster with its own rings
// keeps Policy-0 alone; a list in the file replaces either, and bad lists
// are refused with the reason.
func TestObjectPolicies(t *testing.T) {
	def := Default()
	ps, err := def.ObjectPolicies()
	if err != nil {
		t.Fatal(err)
	}
	if ps.Len() != 2 || ps.Default().Name != "gold" {
		t.Fatalf("default policies %+v", ps.All())
	}
	if p, ok := ps.ByIndex(1); !ok || p.Name != "silver" {
		t.Fatalf("policy 1 = %+v", p)
	}
	if p, ok := ps.ByName("Policy-0"); !ok || p.Index != 0 {
		t.Fatalf("Policy-0 = %+v, %v; want gold", p, ok)
	}
	cluster := Default()
	cluster.Object.RingDir = "/etc/nimbus/rings"
	if ps, err := cluster.ObjectPolicies(); err != nil || ps.Len() != 1 || ps.Default().Name != "Policy-0" {
		t.Fatalf("cluster default policies %v, %v; want Policy-0 alone", ps, err)
	}
	cfg, err := loadYAML(t, `
object:
  policies:
    - {index: 0, name: standard, aliases: [legacy]}
    - {index: 3, name: archive, default: true, replicas: 2}
`)
	if err != nil {
		t.Fatal(err)
	}
	ps, err = cfg.ObjectPolicies()
	if err != nil {
		t.Fatal(err)
	}
	if ps.Len() != 2 || ps.Default().Index != 3 || ps.All()[1].Replicas != 2 {
		t.Fatalf("policies from YAML %+v", ps.All())
	}
	for doc, want := range map[string]string{
		"object:\n  policies:\n    - {index: 0, name: a}\n    - {index: 0, name: b, default: true}\n":                   "index 0 is given twice",
		"object:\n  policies:\n    - {index: 0, name: a}\n    - {index: 1, name: b}\n":                                  "none is the default",
		"object:\n  policies:\n    - {index: 0, name: a, default: true, deprecated: true}\n    - {index: 1, name: b}\n": "deprecated",
		"object:\n  policies:\n    - {index: 0, name: a, default: true}\n    - {index: 1, name: A}\n":                   "already a name",
	} {
		cfg, err := loadYAML(t, doc)
		if err == nil {
			err = cfg.ValidateObject()
		}
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "object.policies") {
			t.Errorf("%q: error %v, want one about object.policies containing %q", doc, err, want)
		}
	}
}
