package imagestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/api"
	"github.com/nimbus-cloud/nimbus/internal/api/apitest"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/node"
	"github.com/nimbus-cloud/nimbus/internal/objectstore/proxy"
)

const swiftTestToken = "glance-token"

// objectService is a running Nimbus object service: a storage node with
// three devices behind a proxy, and the account of project "service".
type objectService struct {
	account string // storage URL, …/v1/AUTH_service
}

func startObjectService(t *testing.T) *objectService {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	devices := []string{"d1", "d2", "d3"}
	for _, d := range devices {
		if err := os.MkdirAll(filepath.Join(dir, "devices", d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	ncfg := node.Config{DevicesRoot: filepath.Join(dir, "devices"), RingDir: filepath.Join(dir, "rings"),
		HashPathPrefix: "pre", HashPathSuffix: "suf", Bind: "127.0.0.1", Logger: log}
	ls, err := node.Listen(ncfg)
	if err != nil {
		t.Fatal(err)
	}
	op, cp, ap := ls.Ports()
	if err := node.EnsureLocalRings(node.LocalRings{Dir: ncfg.RingDir, IP: "127.0.0.1", ObjectPort: op, ContainerPort: cp,
		AccountPort: ap, Devices: devices, PartPower: 6, Replicas: 3}); err != nil {
		ls.Close()
		t.Fatal(err)
	}
	n, err := node.Start(ncfg, ls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	p, err := proxy.New(proxy.Config{
		AccountRing:    filepath.Join(ncfg.RingDir, node.AccountRing),
		ContainerRing:  filepath.Join(ncfg.RingDir, node.ContainerRing),
		ObjectRing:     filepath.Join(ncfg.RingDir, node.ObjectRing),
		HashPathPrefix: "pre", HashPathSuffix: "suf", Logger: log,
		Tokens: apitest.Tokens{swiftTestToken: {UserID: "glance", UserName: "glance", ProjectID: "service",
			ProjectName: "service", Roles: []api.Role{{Name: "member"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.Close()
	})
	return &objectService{account: srv.URL + "/v1/AUTH_service"}
}

// auth is the image service user's credentials.
func (o *objectService) auth() SwiftAuth {
	return SwiftAuthFunc(func(context.Context, bool) (string, string, error) {
		return swiftTestToken, o.account, nil
	})
}

// list returns the object names in container (nil when it does not exist).
func (o *objectService) list(t *testing.T, container string) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, o.account+"/"+container+"?format=json", nil)
	req.Header.Set("X-Auth-Token", swiftTestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	var objs []struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&objs); err != nil {
		t.Fatalf("list %s: status %d: %v", container, resp.StatusCode, err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
	}
	return names
}

func newTestSwift(t *testing.T, cfg SwiftConfig) *Swift {
	t.Helper()
	s, err := NewSwift(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomData(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	return b
}

func readAll(t *testing.T, s Store, loc Location, offset, length int64) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), loc, offset, length)
	if err != nil {
		t.Fatalf("get %d+%d: %v", offset, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %d+%d: %v", offset, length, err)
	}
	return b
}

// Images of every shape round-trip through a real object service: empty,
// small, exactly one segment, and segmented with and without a short last
// segment; ranges read across segment boundaries; delete leaves nothing.
func TestSwiftPutGetDelete(t *testing.T) {
	o := startObjectService(t)
	const seg = 1000
	s := newTestSwift(t, SwiftConfig{ID: "swift", Auth: o.auth(), SegmentSize: seg})
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		size     int
		segments int
	}{
		{"empty", 0, 0},
		{"small", 10, 0},
		{"one segment exactly", seg, 0},
		{"two segments", seg + 1, 2},
		{"segment boundary", 3 * seg, 3},
		{"short last segment", 3*seg + 500, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "img-" + itoa(tc.size)
			data := randomData(tc.size)
			loc, n, err := s.Put(ctx, id, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(tc.size) {
				t.Fatalf("put wrote %d bytes, want %d", n, tc.size)
			}
			if want := "swift+config://swift/glance/" + id; loc.URL != want || loc.Store != "swift" {
				t.Fatalf("location %+v, want %s", loc, want)
			}
			if got := o.list(t, "glance_segments"); countPrefix(got, id+"-") != tc.segments {
				t.Fatalf("segments %v, want %d", got, tc.segments)
			}
			if got := readAll(t, s, loc, 0, -1); !bytes.Equal(got, data) {
				t.Fatalf("download differs: %d bytes, want %d", len(got), len(data))
			}
			for _, r := range [][2]int64{{0, 0}, {0, 1}, {5, 100}, {seg - 10, 30}, {seg + 1, -1}, {int64(tc.size) / 2, -1}, {0, 2*seg + 7}} {
				want := data[min(int(r[0]), len(data)):]
				if r[1] >= 0 {
					want = want[:min(int(r[1]), len(want))]
				}
				if r[0] > int64(len(data)) || (r[0] == int64(len(data)) && r[1] != 0) {
					continue // beyond the end: the image service never asks
				}
				if got := readAll(t, s, loc, r[0], r[1]); !bytes.Equal(got, want) {
					t.Fatalf("range %d+%d: %d bytes differ from the %d wanted", r[0], r[1], len(got), len(want))
				}
			}
			if err := s.Delete(ctx, loc); err != nil {
				t.Fatal(err)
			}
			if got := o.list(t, "glance"); countPrefix(got, id) != 0 {
				t.Fatalf("after delete: glance holds %v", got)
			}
			if got := o.list(t, "glance_segments"); countPrefix(got, id) != 0 {
				t.Fatalf("after delete: glance_segments holds %v", got)
			}
			if _, err := s.Get(ctx, loc, 0, -1); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get after delete: %v, want ErrNotFound", err)
			}
			if err := s.Delete(ctx, loc); err != nil {
				t.Fatalf("second delete: %v", err)
			}
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func countPrefix(names []string, prefix string) int {
	n := 0
	for _, s := range names {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// abortingReader yields n bytes of data, then fails as a client that hung
// up mid-upload.
type abortingReader struct {
	data []byte
}

var errClientGone = errors.New("client went away")

func (f *abortingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, errClientGone
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// An upload whose client goes away leaves nothing behind, whether it
// dies in the first object or segments later; so does a cancelled one.
func TestSwiftFailedUploadLeavesNothing(t *testing.T) {
	o := startObjectService(t)
	s := newTestSwift(t, SwiftConfig{ID: "swift", Auth: o.auth(), SegmentSize: 1000})
	for _, n := range []int{500, 1000, 2500} {
		_, _, err := s.Put(context.Background(), "img-"+itoa(n), &abortingReader{data: randomData(n)})
		if !errors.Is(err, errClientGone) {
			t.Fatalf("put of %d bytes then failure: %v, want the client's error", n, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	go func() {
		pw.Write(randomData(1500))
		cancel()
		pw.Write(randomData(100))
		pw.Close()
	}()
	if _, _, err := s.Put(ctx, "img-cancelled", pr); err == nil {
		t.Fatal("put with a cancelled context succeeded")
	}
	if got := o.list(t, "glance"); len(got) != 0 {
		t.Fatalf("glance holds %v after failed uploads", got)
	}
	if got := o.list(t, "glance_segments"); len(got) != 0 {
		t.Fatalf("glance_segments holds %v after failed uploads", got)
	}
}

// Delete also removes segments an upload that died with its process left
// behind, and never touches another image's.
func TestSwiftDeleteSweepsOrphanSegments(t *testing.T) {
	o := startObjectService(t)
	s := newTestSwift(t, SwiftConfig{ID: "swift", Auth: o.auth(), SegmentSize: 100})
	ctx := context.Background()
	locA, _, err := s.Put(ctx, "image-a", bytes.NewReader(randomData(250)))
	if err != nil {
		t.Fatal(err)
	}
	locB, _, err := s.Put(ctx, "image-b", bytes.NewReader(randomData(250)))
	if err != nil {
		t.Fatal(err)
	}
	// A crashed upload's segment: not in any manifest.
	if _, err := s.putStream(ctx, "glance_segments", "image-a-00009", strings.NewReader("orphan"), &sourceReader{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, locA); err != nil {
		t.Fatal(err)
	}
	if got := o.list(t, "glance_segments"); countPrefix(got, "image-a") != 0 || countPrefix(got, "image-b-") != 3 {
		t.Fatalf("segments after deleting image-a: %v", got)
	}
	if got := readAll(t, s, locB, 0, -1); len(got) != 250 {
		t.Fatalf("image-b reads %d bytes", len(got))
	}
}

// With a seed, images spread over containers named after their ids'
// first characters, as Glance's swift_store_multiple_containers_seed.
func TestSwiftMultipleContainers(t *testing.T) {
	o := startObjectService(t)
	s := newTestSwift(t, SwiftConfig{ID: "swift", Auth: o.auth(), Container: "images", MultipleContainersSeed: 2, SegmentSize: 100})
	loc, _, err := s.Put(context.Background(), "ab12-image", bytes.NewReader(randomData(150)))
	if err != nil {
		t.Fatal(err)
	}
	if loc.URL != "swift+config://swift/images_ab/ab12-image" {
		t.Fatalf("location %s", loc.URL)
	}
	if got := o.list(t, "images_ab_segments"); len(got) != 2 {
		t.Fatalf("segments %v", got)
	}
	if got := readAll(t, s, loc, 0, -1); !bytes.Equal(got, randomData(150)) {
		t.Fatal("download differs")
	}
}

// An expired token is renewed once and the request sent again.
func TestSwiftRenewsRefusedToken(t *testing.T) {
	o := startObjectService(t)
	var renewals atomic.Int32
	auth := SwiftAuthFunc(func(_ context.Context, renew bool) (string, string, error) {
		if renew {
			renewals.Add(1)
			return swiftTestToken, o.account, nil
		}
		if renewals.Load() == 0 {
			return "expired", o.account, nil
		}
		return swiftTestToken, o.account, nil
	})
	s := newTestSwift(t, SwiftConfig{ID: "swift", Auth: auth})
	loc, _, err := s.Put(context.Background(), "img", strings.NewReader("data"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, loc, 0, -1); string(got) != "data" || renewals.Load() != 1 {
		t.Fatalf("got %q after %d renewals", got, renewals.Load())
	}
}

// Locations of other stores or schemes are refused, not guessed at.
func TestSwiftForeignLocations(t *testing.T) {
	s := newTestSwift(t, SwiftConfig{ID: "swift", Auth: SwiftAuthFunc(func(context.Context, bool) (string, string, error) {
		return "", "", errors.New("no service")
	})})
	for _, u := range []string{"s3://glance/x", "swift+config://other/glance/x", "swift+config://swift/glance", "swift+config://swift//x"} {
		if _, err := s.Get(context.Background(), Location{Store: "swift", URL: u}, 0, -1); err == nil || strings.Contains(err.Error(), "no service") {
			t.Errorf("get %s: %v, want a refusal before any request", u, err)
		}
	}
}
