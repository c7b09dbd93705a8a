package server

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentWritesSameObject races PUTs and DELETEs of one name with
// shuffled timestamps: whatever the arrival order, the newest timestamp
// wins at once, and exactly one file remains once the replicator has
// recomputed the suffix (a PUT into a hash dir that was empty when it
// began does not clean up after itself, so a concurrent one may leave
// an obsolete file until then).
func TestConcurrentWritesSameObject(t *testing.T) {
	n := newNode(t)
	const writers = 16
	tss := make([]string, writers)
	for i := range tss {
		tss[i] = n.ts()
	}
	order := rand.Perm(writers)
	var wg sync.WaitGroup
	for _, i := range order {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if i == writers-2 {
				do(t, "DELETE", n.objURL+"/sda/0/a/c/o", map[string]string{"X-Timestamp": tss[i]}, "")
				return
			}
			n.putObject(t, "/sda/0/a/c/o", tss[i], fmt.Sprintf("v%d", i), nil)
		}(i)
	}
	wg.Wait()
	g := do(t, "GET", n.objURL+"/sda/0/a/c/o", nil, "")
	if g.status != 200 || g.body != fmt.Sprintf("v%d", writers-1) {
		t.Fatalf("winner: %d %q", g.status, g.body)
	}
	if _, err := ObjectSuffixHashes(n.dev, 0, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if files := listDir(t, n.objDir("0", "a", "c", "o")); len(files) != 1 || files[0] != tss[writers-1]+".data" {
		t.Fatalf("files %v", files)
	}
}

// TestConcurrentContainerUpdates has many object servers' updates hit one
// container database at once; SQLite's write lock must serialise them
// without losing any.
func TestConcurrentContainerUpdates(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	const objs = 48
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range objs {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			r := n.putObject(t, fmt.Sprintf("/sda/%d/a/c/o%02d", i%4, i), n.ts(), strings.Repeat("x", i), n.containerHeaders())
			if r.status != 201 {
				t.Errorf("put %d: %d", i, r.status)
			}
		}(i)
	}
	wg.Wait()
	// An update that missed its deadline on a loaded machine was queued
	// for the updater (as Swift's async pendings): one pass delivers it.
	// Either way no update may be lost.
	if st := n.obj.UpdateOnce(t.Context()); st.Failed != 0 {
		t.Fatalf("queued updates failed again: %+v", st)
	}
	h := do(t, "HEAD", n.contURL+"/sda/1/a/c", nil, "")
	if h.header.Get("X-Container-Object-Count") != fmt.Sprint(objs) || h.header.Get("X-Container-Bytes-Used") != fmt.Sprint(objs*(objs-1)/2) {
		t.Fatalf("stats %v", h.header)
	}
	if got := listing(t, n.contURL+"/sda/1/a/c", nil); len(got) != objs {
		t.Fatalf("listing has %d", len(got))
	}
}
