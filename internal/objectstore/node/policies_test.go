package node

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/policy"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
)

// A node that ran with policy 0 only (an upgrade) gains policy 1's ring
// on its next start without policy 0's ring changing; each policy's ring
// has its replica count; a node missing a policy's ring refuses to start;
// and policy 1's replicator moves a handoff copy to its primaries in
// objects-1 (placed by policy 1's ring), leaving objects alone.
func TestNodePolicies(t *testing.T) {
	dir := t.TempDir()
	devs := []string{"d1", "d2", "d3"}
	cfg := Config{DevicesRoot: filepath.Join(dir, "devices"), RingDir: filepath.Join(dir, "rings"),
		HashPathSuffix: "secret", Bind: "127.0.0.1", Logger: quiet()}
	for _, d := range devs {
		if err := os.MkdirAll(filepath.Join(cfg.DevicesRoot, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	op, cp, ap := ls.Ports()
	lr := LocalRings{Dir: cfg.RingDir, IP: "127.0.0.1", ObjectPort: op, ContainerPort: cp, AccountPort: ap,
		Devices: devs, PartPower: 4, Replicas: 3}
	if err := EnsureLocalRings(lr); err != nil { // before policies
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(cfg.RingDir, "object.ring.gz"))
	if err != nil {
		t.Fatal(err)
	}
	pols, err := policy.New([]policy.Policy{{Index: 0, Name: "gold", Default: true}, {Index: 1, Name: "silver", Replicas: 2}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policies = pols
	if _, err := Start(cfg, ls); err == nil || !strings.Contains(err.Error(), "storage policy 1") {
		t.Fatalf("start without policy 1's ring: %v", err)
	}
	ls, err = Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lr.Policies = pols.All()
	if err := EnsureLocalRings(lr); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(cfg.RingDir, "object.ring.gz")); string(after) != string(before) {
		t.Fatal("adding a policy rewrote policy 0's ring")
	}
	r1, err := ring.Load(filepath.Join(cfg.RingDir, "object-1.ring.gz"), ring.HashPath{Suffix: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if r1.ReplicaCount() != 2 {
		t.Fatalf("policy 1 ring has %d replicas, want 2", r1.ReplicaCount())
	}
	n, err := Start(cfg, ls)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	if len(n.PolicyReplicators) != 2 || n.PolicyReplicators[0] != n.ObjectReplicator {
		t.Fatalf("replicators %v", n.PolicyReplicators)
	}

	// Write a silver object to the device that is not one of its
	// primaries (a handoff), then replicate policy 1.
	part, prims := r1.GetNodes("AUTH_a", "c", "o")
	handoff := ""
	for _, d := range devs {
		isPrimary := false
		for _, p := range prims {
			isPrimary = isPrimary || p.Name == d
		}
		if !isPrimary {
			handoff = d
		}
	}
	u := "http://" + n.ObjectHost + "/" + handoff + "/" + strconv.Itoa(part) + "/AUTH_a/c/o"
	req, _ := http.NewRequest("PUT", u, strings.NewReader("silver"))
	req.Header.Set("X-Timestamp", "1700000000.00000")
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("X-Backend-Storage-Policy-Index", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("put to handoff: %d", resp.StatusCode)
	}
	// The node's own replicators run too; whichever pass gets there
	// first, two passes leave the object on its primaries only.
	for range 2 {
		if st := n.PolicyReplicators[1].ReplicateOnce(context.Background()); st.Failed != 0 {
			t.Fatalf("policy 1 replication: %+v", st)
		}
	}
	if got := countData(t, filepath.Join(cfg.DevicesRoot, handoff, "objects-1")); got != 0 {
		t.Errorf("handoff %s still holds %d silver objects", handoff, got)
	}
	for _, p := range prims {
		if got := countData(t, filepath.Join(cfg.DevicesRoot, p.Name, "objects-1")); got != 1 {
			t.Errorf("primary %s holds %d silver objects, want 1", p.Name, got)
		}
	}
	for _, d := range devs {
		if got := countData(t, filepath.Join(cfg.DevicesRoot, d, "objects")); got != 0 {
			t.Errorf("device %s: %d objects in policy 0's dir", d, got)
		}
	}
}

func countData(t *testing.T, root string) int {
	t.Helper()
	n := 0
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".data") {
			n++
		}
		return nil
	})
	return n
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
