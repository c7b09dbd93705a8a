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
