package node

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// A one-machine node builds its rings with the ports it got on first
// start, and a restart with "any port" takes the same ports again, so the
// rings stay right.
func TestLocalNodeKeepsItsPorts(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DevicesRoot: filepath.Join(dir, "devices"), RingDir: filepath.Join(dir, "rings"),
		HashPathSuffix: "secret", Bind: "127.0.0.1"}
	for _, d := range []string{"d1", "d2", "d3"} {
		if err := os.MkdirAll(filepath.Join(cfg.DevicesRoot, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	start := func() *Node {
		t.Helper()
		ls, err := Listen(cfg)
		if err != nil {
			t.Fatal(err)
		}
		op, cp, ap := ls.Ports()
		if err := EnsureLocalRings(LocalRings{Dir: cfg.RingDir, IP: "127.0.0.1", ObjectPort: op, ContainerPort: cp,
			AccountPort: ap, Devices: []string{"d1", "d2", "d3"}, PartPower: 6, Replicas: 3}); err != nil {
			t.Fatal(err)
		}
		n, err := Start(cfg, ls)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := start()
	first := [3]string{n.ObjectHost, n.ContainerHost, n.AccountHost}
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	n = start()
	defer n.Close(context.Background())
	if again := [3]string{n.ObjectHost, n.ContainerHost, n.AccountHost}; again != first {
		t.Fatalf("restart moved the servers from %v to %v", first, again)
	}
	resp, err := http.Head("http://" + n.AccountHost + "/d1/0/AUTH_x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("account server after restart: %d", resp.StatusCode)
	}
	st := n.ObjectReplicator.ReplicateOnce(context.Background())
	if st.Failed != 0 {
		t.Fatalf("replication on an empty node: %+v", st)
	}
}
