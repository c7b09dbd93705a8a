package replicator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/server"
)

// A node that was down while objects were written and deleted catches up
// through the other nodes' replicators once it is back.
func TestNodeDownDuringWritesConverges(t *testing.T) {
	c := newCluster(t, 3)
	_, primaries := c.rings["object"].GetNodes("AUTH_test", "c", "photo")
	_, gone := c.rings["object"].GetNodes("AUTH_test", "c", "old")
	c.createContainer(c.rings["container"].Devices())
	c.putObject("old", []byte("soon deleted"), nil, gone)
	down := c.node(primaries[2])
	down.down.Store(true)
	c.putObject("photo", []byte("the photo"), http.Header{"X-Object-Meta-Color": {"blue"}}, primaries[:2])
	// Delete "old" on the nodes that are up (those of its primaries).
	part, _ := c.rings["object"].GetNodes("AUTH_test", "c", "old")
	ts := c.ts()
	for _, d := range gone {
		if c.node(d) != down {
			c.do(http.MethodDelete, d, part, "/AUTH_test/c/old", http.Header{"X-Timestamp": {ts}}, nil)
		}
	}
	if st, _ := c.getObject("photo", primaries[2]); st != http.StatusServiceUnavailable {
		t.Fatalf("down node answered %d", st)
	}
	down.down.Store(false)
	if st, _ := c.getObject("photo", primaries[2]); st != http.StatusNotFound {
		t.Fatalf("before replication the returning node has the object: %d", st)
	}
	c.replicate()
	st, body := c.getObject("photo", primaries[2])
	if st != http.StatusOK || string(body) != "the photo" {
		t.Fatalf("after replication: %d %q", st, body)
	}
	for _, d := range gone {
		if st, _ := c.getObject("old", d); st != http.StatusNotFound {
			t.Errorf("deleted object still on %s after replication: %d", d.Name, st)
		}
	}
	// A second pass finds nothing to do.
	for _, tn := range c.nodes {
		if st := tn.objRep.ReplicateOnce(context.Background()); st.Pushed != 0 || st.Failed != 0 {
			t.Errorf("second pass on %s: %+v", tn.dev, st)
		}
	}
}

// An object written to a handoff while a primary was down reaches the
// primary, and the handoff copy is removed.
func TestHandoffPartitionGoesHome(t *testing.T) {
	c := newCluster(t, 4)
	part, primaries := c.rings["object"].GetNodes("AUTH_test", "c", "doc")
	var handoff ring.Device
	for d := range c.rings["object"].GetMoreNodes(part) {
		handoff = d
		break
	}
	c.putObject("doc", []byte("written while a primary was down"), nil, []ring.Device{primaries[0], primaries[1], handoff})
	hn := c.node(handoff)
	partDir := filepath.Join(hn.root, handoff.Name, "objects", strconv.Itoa(part))
	if _, err := os.Stat(partDir); err != nil {
		t.Fatal(err)
	}
	st := hn.objRep.ReplicateOnce(context.Background())
	if st.Removed != 1 || st.Failed != 0 {
		t.Fatalf("handoff pass: %+v", st)
	}
	if _, err := os.Stat(partDir); !os.IsNotExist(err) {
		t.Fatalf("handoff partition still there: %v", err)
	}
	if st, body := c.getObject("doc", primaries[2]); st != http.StatusOK || string(body) != "written while a primary was down" {
		t.Fatalf("primary after handoff replication: %d %q", st, body)
	}
}

// listing returns the names in the test container on one device.
func (c *cluster) listing(d ring.Device) []string {
	c.t.Helper()
	part, _ := c.rings["container"].GetNodes("AUTH_test", "c", "")
	st, body := c.do(http.MethodGet, d, part, "/AUTH_test/c", http.Header{"Accept": {"application/json"}}, nil)
	if st != http.StatusOK {
		c.t.Fatalf("listing on %s: %d %s", d.Name, st, body)
	}
	var rows []struct{ Name string }
	if err := json.Unmarshal(body, &rows); err != nil {
		c.t.Fatal(err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name)
	}
	return names
}

// Rows a container replica missed (its node was down for the updates), and
// a replica that never got the container at all, are filled in.
func TestContainerRowsReplicated(t *testing.T) {
	c := newCluster(t, 3)
	_, cnodes := c.rings["container"].GetNodes("AUTH_test", "c", "")
	c.createContainer(cnodes[:2])
	// Replica 1 was down for these object updates; replica 2 never got
	// the container at all.
	part, _ := c.rings["container"].GetNodes("AUTH_test", "c", "")
	for _, name := range []string{"a", "b"} {
		h := http.Header{"X-Timestamp": {c.ts()}, "X-Size": {"1"}, "X-Content-Type": {"text/plain"},
			"X-Etag": {"0cc175b9c0f1b6a831c399e269772661"}}
		if st, b := c.do(http.MethodPut, cnodes[0], part, "/AUTH_test/c/"+name, h, nil); st != http.StatusCreated {
			t.Fatalf("PUT row %s: %d %s", name, st, b)
		}
	}
	if got := c.listing(cnodes[1]); len(got) != 0 {
		t.Fatalf("replica 1 before replication: %v", got)
	}
	c.replicate()
	for _, d := range cnodes {
		if got := c.listing(d); len(got) != 2 || got[0] != "a" || got[1] != "b" {
			t.Errorf("listing on %s after replication: %v", d.Name, got)
		}
	}
	st, _ := c.do(http.MethodHead, cnodes[2], part, "/AUTH_test/c", nil, nil)
	if st != http.StatusNoContent {
		t.Fatalf("container never created on replica 2 was not replicated: %d", st)
	}
}

// Deleted listing rows older than the reclaim age leave every replica
// after a replication round, and do not come back with the next one;
// live rows and recent deletions stay.
func TestDeletedRowsReclaimed(t *testing.T) {
	c := newCluster(t, 3)
	part, cnodes := c.rings["container"].GetNodes("AUTH_test", "c", "")
	c.createContainer(cnodes)
	old := fmt.Sprintf("%d.00000", time.Now().Add(-8*24*time.Hour).Unix())
	row := func(d ring.Device, method, name, ts string) {
		h := http.Header{"X-Timestamp": {ts}}
		if method == http.MethodPut {
			h = http.Header{"X-Timestamp": {ts}, "X-Size": {"1"}, "X-Content-Type": {"text/plain"},
				"X-Etag": {"0cc175b9c0f1b6a831c399e269772661"}}
		}
		if st, b := c.do(method, d, part, "/AUTH_test/c/"+name, h, nil); st/100 != 2 {
			t.Fatalf("%s row %s on %s: %d %s", method, name, d.Name, st, b)
		}
	}
	// The old deletion reached one replica only; the others learn of it
	// from replication, if at all.
	row(cnodes[0], http.MethodDelete, "old-gone", old)
	for _, d := range cnodes {
		row(d, http.MethodPut, "live", c.ts())
		row(d, http.MethodDelete, "new-gone", c.ts())
	}
	rowNames := func(d ring.Device) []string {
		t.Helper()
		dbs, err := server.ListDBs(filepath.Join(c.node(d).root, d.Name), "container")
		if err != nil || len(dbs) != 1 {
			t.Fatalf("container databases on %s: %v, %v", d.Name, dbs, err)
		}
		db, err := server.OpenDB(dbs[0].Path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := server.ReadDBRows(context.Background(), db, "container", nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range rows {
			names = append(names, r.Name)
		}
		slices.Sort(names)
		return names
	}
	for round := range 2 {
		c.replicate()
		for _, d := range cnodes {
			if got := rowNames(d); !slices.Equal(got, []string{"live", "new-gone"}) {
				t.Errorf("round %d: rows on %s: %v", round, d.Name, got)
			}
		}
	}
}

// A container deleted longer ago than the reclaim age, and empty, leaves
// every replica with its database; one deleted recently stays (a replica
// that missed the DELETE must still learn of it). The name can be used
// again afterwards.
func TestDeletedDatabasesReclaimed(t *testing.T) {
	c := newCluster(t, 3)
	at := func(ago time.Duration) string { return fmt.Sprintf("%d.00000", time.Now().Add(-ago).Unix()) }
	for _, tc := range []struct {
		name     string
		put, del string
	}{{"old", at(9 * 24 * time.Hour), at(8 * 24 * time.Hour)}, {"recent", at(time.Hour), at(time.Minute)}} {
		part, nodes := c.rings["container"].GetNodes("AUTH_test", tc.name, "")
		for _, d := range nodes {
			for _, op := range []struct{ method, ts string }{{http.MethodPut, tc.put}, {http.MethodDelete, tc.del}} {
				if st, b := c.do(op.method, d, part, "/AUTH_test/"+tc.name, http.Header{"X-Timestamp": {op.ts}}, nil); st/100 != 2 {
					t.Fatalf("%s container %s on %s: %d %s", op.method, tc.name, d.Name, st, b)
				}
			}
		}
	}
	containers := func(d ring.Device) []string {
		t.Helper()
		dbs, err := server.ListDBs(filepath.Join(c.node(d).root, d.Name), "container")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range dbs {
			db, err := server.OpenDB(f.Path)
			if err != nil {
				t.Fatal(err)
			}
			_, name, err := server.ReadDBNames(context.Background(), db)
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
		return names
	}
	c.replicate()
	for _, tn := range c.nodes {
		d := ring.Device{Name: tn.dev}
		if got := containers(d); !slices.Equal(got, []string{"recent"}) {
			t.Errorf("container databases on %s after replication: %v", d.Name, got)
		}
	}
	part, nodes := c.rings["container"].GetNodes("AUTH_test", "old", "")
	for _, d := range nodes {
		if st, b := c.do(http.MethodPut, d, part, "/AUTH_test/old", http.Header{"X-Timestamp": {c.ts()}}, nil); st != http.StatusCreated {
			t.Fatalf("PUT the reclaimed container again on %s: %d %s", d.Name, st, b)
		}
		if st, b := c.do(http.MethodHead, d, part, "/AUTH_test/old", nil, nil); st != http.StatusNoContent {
			t.Fatalf("HEAD the new container on %s: %d %s", d.Name, st, b)
		}
	}
}

// Objects whose X-Delete-At has passed disappear after an expirer pass,
// from the object servers and the container listing, and leave the queue.
func TestExpirerDeletesExpiredObjects(t *testing.T) {
	c := newCluster(t, 3)
	c.createContainer(c.rings["container"].Devices())
	at := time.Now().Unix() + 2
	const queue = "0000000000"
	qpart, qnodes := c.rings["container"].GetNodes(".expiring_objects", queue, "")
	h := http.Header{
		"X-Delete-At":           {strconv.FormatInt(at, 10)},
		"X-Delete-At-Container": {queue},
		"X-Delete-At-Partition": {strconv.Itoa(qpart)},
	}
	for _, d := range qnodes {
		h.Add("X-Delete-At-Host", d.Host())
		h.Add("X-Delete-At-Device", d.Name)
	}
	h.Set("X-Delete-At-Host", join(h.Values("X-Delete-At-Host")))
	h.Set("X-Delete-At-Device", join(h.Values("X-Delete-At-Device")))
	_, onodes := c.rings["object"].GetNodes("AUTH_test", "c", "tmp")
	c.putObject("tmp", []byte("short-lived"), h, onodes)
	_, knodes := c.rings["object"].GetNodes("AUTH_test", "c", "keep")
	c.putObject("keep", []byte("stays"), nil, knodes)

	// Not due yet: nothing happens.
	e := c.expirer(c.node(qnodes[0]), time.Unix(at-1, 0))
	if st := e.ExpireOnce(context.Background()); st.Expired != 0 {
		t.Fatalf("expired early: %+v", st)
	}
	e = c.expirer(c.node(qnodes[0]), time.Unix(at+10, 0))
	if st := e.ExpireOnce(context.Background()); st.Expired != 1 || st.Failed != 0 {
		t.Fatalf("expirer pass: %+v", st)
	}
	for _, d := range onodes {
		if st, _ := c.getObject("tmp", d); st != http.StatusNotFound {
			t.Errorf("expired object still on %s (even to replication reads): %d", d.Name, st)
		}
	}
	_, cnodes := c.rings["container"].GetNodes("AUTH_test", "c", "")
	for _, d := range cnodes {
		if got := c.listing(d); len(got) != 1 || got[0] != "keep" {
			t.Errorf("listing on %s: %v", d.Name, got)
		}
	}
	for _, d := range qnodes {
		st, body := c.do(http.MethodGet, d, qpart, "/.expiring_objects/"+queue, nil, nil)
		if st/100 != 2 || len(bytes.TrimSpace(body)) != 0 {
			t.Errorf("queue on %s: %d %q", d.Name, st, body)
		}
	}
	// Every replica of the queue runs the expirer; repeats are harmless.
	if st := c.expirer(c.node(qnodes[1]), time.Unix(at+10, 0)).ExpireOnce(context.Background()); st.Failed != 0 {
		t.Fatalf("second expirer: %+v", st)
	}
}

func join(v []string) string {
	out := ""
	for i, s := range v {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

// A replica corrupted on disk is quarantined by the auditor and restored
// by replication from the good replicas.
func TestQuarantinedObjectRestored(t *testing.T) {
	c := newCluster(t, 3)
	part, onodes := c.rings["object"].GetNodes("AUTH_test", "c", "precious")
	body := bytes.Repeat([]byte("precious data "), 100)
	c.putObject("precious", body, nil, onodes)
	bad := c.node(onodes[1])
	var data string
	filepath.Walk(filepath.Join(bad.root, bad.dev, "objects", strconv.Itoa(part)), func(p string, _ os.FileInfo, _ error) error {
		if filepath.Ext(p) == ".data" {
			data = p
		}
		return nil
	})
	f, err := os.OpenFile(data, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("XXXX"), 10) // same size, wrong bytes
	f.Close()
	st, err := bad.objects.AuditOnce(context.Background())
	if err != nil || st.Quarantined != 1 {
		t.Fatalf("audit: %+v %v", st, err)
	}
	if code, _ := c.getObject("precious", onodes[1]); code != http.StatusNotFound {
		t.Fatalf("quarantined object still served: %d", code)
	}
	c.replicate()
	code, got := c.getObject("precious", onodes[1])
	if code != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("after replication: %d, %d bytes", code, len(got))
	}
}
