package server

import (
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestListingKeepsAcknowledgedPutsAfterCrash stores objects concurrently
// (so their listing rows are group-committed), takes the container
// device's files as a crash would leave them (copied while the server
// still has the database open: nothing is flushed or checkpointed at a
// clean close), starts a new container server on the copy, and expects
// every acknowledged object in its listing and counts.
func TestListingKeepsAcknowledgedPutsAfterCrash(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	const objs, workers = 64, 16
	concurrently(objs, workers, func(i int) {
		r := n.putObject(t, fmt.Sprintf("/sda/%d/a/c/o%02d", i%8, i), n.ts(), "x", n.containerHeaders())
		if r.status != 201 {
			t.Errorf("put o%02d: %d", i, r.status)
		}
	})
	// Each object server acknowledged its PUT after the container server
	// acknowledged the row; a row it failed to deliver would sit here.
	if pend := listTree(t, filepath.Join(n.dev, asyncPendingDir)); len(pend) != 0 {
		t.Fatalf("updates were queued, not acknowledged: %v", pend)
	}

	root := t.TempDir()
	copyTree(t, filepath.Join(n.dev, containersDir), filepath.Join(root, "sda", containersDir))
	cfg := n.cfg
	cfg.DevicesRoot = root
	cs, err := NewContainerServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	srv := httptest.NewServer(cs)
	defer srv.Close()
	got := listing(t, srv.URL+"/sda/1/a/c", nil)
	if len(got) != objs {
		t.Fatalf("listing after restart has %d of %d: %v", len(got), objs, got)
	}
	h := do(t, "HEAD", srv.URL+"/sda/1/a/c", nil, "")
	if h.header.Get("X-Container-Object-Count") != strconv.Itoa(objs) || h.header.Get("X-Container-Bytes-Used") != strconv.Itoa(objs) {
		t.Fatalf("stats after restart %v", h.header)
	}
}

// TestGroupCommitLastWriteWins sends many updates of a few names with
// shuffled timestamps at once, so batches hold several versions of one
// name in any order: the newest must win and the counters must match.
func TestGroupCommitLastWriteWins(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	const names, versions = 4, 12
	type upd struct {
		name, ts string
		size     int
		del      bool
	}
	var all []upd
	for i := range names {
		for v := range versions {
			all = append(all, upd{name: fmt.Sprintf("o%d", i), ts: n.ts(), size: 10*i + v, del: i%2 == 1 && v == versions-1})
		}
	}
	want := map[string]upd{}
	for _, u := range all {
		want[u.name] = u // later in all = newer timestamp
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	var wg sync.WaitGroup
	for _, u := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := n.contURL + "/sda/1/a/c/" + u.name
			if u.del {
				expectStatus(t, do(t, "DELETE", url, map[string]string{"X-Timestamp": u.ts}, ""), 204, "delete row")
				return
			}
			expectStatus(t, do(t, "PUT", url, map[string]string{"X-Timestamp": u.ts, "X-Size": strconv.Itoa(u.size),
				"X-Content-Type": "x", "X-Etag": "e"}, ""), 201, "put row")
		}()
	}
	wg.Wait()
	var count, bytes int
	var live []string
	for i := range names {
		if u := want[fmt.Sprintf("o%d", i)]; !u.del {
			count++
			bytes += u.size
			live = append(live, u.name)
		}
	}
	h := do(t, "HEAD", n.contURL+"/sda/1/a/c", nil, "")
	if h.header.Get("X-Container-Object-Count") != strconv.Itoa(count) || h.header.Get("X-Container-Bytes-Used") != strconv.Itoa(bytes) {
		t.Fatalf("stats %s / %s, want %d / %d", h.header.Get("X-Container-Object-Count"), h.header.Get("X-Container-Bytes-Used"), count, bytes)
	}
	if got := listing(t, n.contURL+"/sda/1/a/c", nil); fmt.Sprint(got) != fmt.Sprint(live) {
		t.Fatalf("listing %v, want %v", got, live)
	}
}

// listTree lists the regular files under dir (none if it is missing).
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// copyTree copies the files under src to dst as they are on disk now.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o750)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(to)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAcknowledgedRowsAreInTheLastSync: a listing row's transaction does
// not fsync; it is acknowledged only after a filesystem sync that began
// after it committed. Each sync here takes a crash image of the
// container device (its -shm left behind, as a crash loses it), and
// every acknowledged row must be listed by a server started on the image
// of the last sync before its acknowledgement.
func TestAcknowledgedRowsAreInTheLastSync(t *testing.T) {
	n := newNode(t)
	n.putContainer(t, "a", "c")
	var mu sync.Mutex
	var images []string
	injectSync(t, func(int) error {
		img := t.TempDir()
		copyTree(t, filepath.Join(n.dev, containersDir), filepath.Join(img, "sda", containersDir))
		shm, _ := filepath.Glob(filepath.Join(img, "sda", containersDir, "*", "*", "*", "*-shm"))
		for _, f := range shm {
			os.Remove(f)
		}
		time.Sleep(time.Millisecond) // a flush takes time; let rows queue
		mu.Lock()
		images = append(images, img)
		mu.Unlock()
		return nil
	})
	// Keep every row on the group path (see TestAcknowledgedPutsAreInTheLastSync).
	hold, err := beginFSCommit(n.dev)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.release()

	const rows, workers = 48, 12
	acked := make([]int, rows) // syncs completed at each row's acknowledgement
	concurrently(rows, workers, func(i int) {
		name := fmt.Sprintf("o%02d", i)
		r := do(t, "PUT", n.contURL+"/sda/1/a/c/"+name, map[string]string{
			"X-Timestamp": n.ts(), "X-Size": "1", "X-Content-Type": "text/plain", "X-Etag": md5hex(name),
		}, "")
		mu.Lock()
		acked[i] = len(images)
		mu.Unlock()
		if r.status != 201 {
			t.Errorf("put row %s: %d", name, r.status)
		}
	})
	if len(images) >= rows {
		t.Errorf("%d syncs for %d rows: nothing was grouped", len(images), rows)
	}
	listed := map[int]map[string]bool{} // by image
	for i, k := range acked {
		if k == 0 {
			t.Fatalf("row %d acknowledged before any sync", i)
		}
		if listed[k] == nil {
			cfg := n.cfg
			cfg.DevicesRoot = images[k-1]
			cs, err := NewContainerServer(cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(cs)
			listed[k] = map[string]bool{}
			for _, name := range listing(t, srv.URL+"/sda/1/a/c", nil) {
				listed[k][name] = true
			}
			srv.Close()
			cs.Close()
		}
		if name := fmt.Sprintf("o%02d", i); !listed[k][name] {
			t.Fatalf("row %s acknowledged, but the sync before its acknowledgement lists only %d rows", name, len(listed[k]))
		}
	}
}
