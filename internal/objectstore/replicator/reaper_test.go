package replicator_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/direct"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/reaper"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/server"
)

// A deleted account's objects and containers are deleted from every
// replica by the reaper of the node that holds the account's first
// replica, once its delay has passed; before that nothing is touched.
func TestReaperEmptiesDeletedAccount(t *testing.T) {
	c := newCluster(t, 3)
	ctx := context.Background()
	apart, anodes := c.rings["account"].GetNodes("AUTH_test", "", "")
	for _, d := range anodes {
		if st, b := c.do(http.MethodPut, d, apart, "/AUTH_test", http.Header{"X-Timestamp": {c.ts()}}, nil); st/100 != 2 {
			t.Fatalf("PUT account on %s: %d %s", d.Name, st, b)
		}
	}
	cpart, cnodes := c.rings["container"].GetNodes("AUTH_test", "c", "")
	ts := c.ts()
	for i, d := range cnodes {
		h := http.Header{"X-Timestamp": {ts}}
		direct.SetUpdateTarget(h, "Account", apart, anodes, i)
		if st, b := c.do(http.MethodPut, d, cpart, "/AUTH_test/c", h, nil); st/100 != 2 {
			t.Fatalf("PUT container on %s: %d %s", d.Name, st, b)
		}
	}
	names := []string{"a", "b/with/slashes", "ü"}
	for _, name := range names {
		_, onodes := c.rings["object"].GetNodes("AUTH_test", "c", name)
		c.putObject(name, []byte("body of "+name), nil, onodes)
	}
	for _, tn := range c.nodes {
		tn.containers.UpdateOnce(ctx) // the account learns of the container
	}
	for _, d := range anodes {
		if st, b := c.do(http.MethodDelete, d, apart, "/AUTH_test", http.Header{"X-Timestamp": {c.ts()}}, nil); st/100 != 2 {
			t.Fatalf("DELETE account on %s: %d %s", d.Name, st, b)
		}
	}
	reap := func(delay time.Duration) reaper.Stats {
		var total reaper.Stats
		for _, tn := range c.nodes {
			r, err := reaper.New(reaper.Config{DevicesRoot: tn.root, AccountRing: c.rings["account"], ContainerRing: c.rings["container"],
				ObjectRing: c.rings["object"], LocalHost: tn.aHost, Delay: delay, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			st := r.ReapOnce(ctx)
			total.Accounts += st.Accounts
			total.Containers += st.Containers
			total.Objects += st.Objects
			total.Failed += st.Failed
		}
		return total
	}
	if st := reap(time.Hour); st != (reaper.Stats{}) {
		t.Fatalf("reaped before the delay: %+v", st)
	}
	_, anodesOfA := c.rings["object"].GetNodes("AUTH_test", "c", "a")
	if st, _ := c.getObject("a", anodesOfA[0]); st != http.StatusOK {
		t.Fatalf("object gone before the delay: %d", st)
	}
	if st := reap(0); st != (reaper.Stats{Accounts: 1, Containers: 1, Objects: len(names)}) {
		t.Fatalf("reaper pass: %+v, want one account, one container and %d objects", st, len(names))
	}
	for _, name := range names {
		part, onodes := c.rings["object"].GetNodes("AUTH_test", "c", name)
		for _, d := range onodes {
			if st, _ := c.do(http.MethodHead, d, part, "/AUTH_test/c/"+name, nil, nil); st != http.StatusNotFound {
				t.Errorf("object %s on %s after the reaper: %d", name, d.Name, st)
			}
		}
	}
	for _, d := range cnodes {
		if st, _ := c.do(http.MethodHead, d, cpart, "/AUTH_test/c", nil, nil); st != http.StatusNotFound {
			t.Errorf("container on %s after the reaper: %d", d.Name, st)
		}
	}
	// The deleted account recorded the container's deletion, so it is
	// empty and the next pass has nothing to do.
	for _, tn := range c.nodes {
		tn.containers.UpdateOnce(ctx)
	}
	for _, d := range anodes {
		dbs, err := server.ListDBs(filepath.Join(c.node(d).root, d.Name), "account")
		if err != nil || len(dbs) != 1 {
			t.Fatalf("account databases on %s: %v, %v", d.Name, dbs, err)
		}
		db, err := server.OpenDB(dbs[0].Path)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := server.ReadDBRows(ctx, db, "account", nil)
		db.Close()
		if err != nil || len(rows) != 1 || !rows[0].Deleted {
			t.Errorf("account rows on %s after the reaper: %+v (%v), want the container's, deleted", d.Name, rows, err)
		}
	}
	if st := reap(0); st != (reaper.Stats{}) {
		t.Errorf("a pass after the account was emptied: %+v", st)
	}
}
