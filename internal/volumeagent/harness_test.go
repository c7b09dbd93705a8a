package volumeagent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
	"github.com/nimbus-cloud/nimbus/internal/volumeagent"
)

const host = "storage-1"

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// harness is a bus, a fake image service and the state of one storage
// host; agents are started on it and the storage daemon they leave
// behind is killed at the end.
type harness struct {
	t        *testing.T
	bus      *bus.Bus
	stateDir string
	port     int
	reports  chan agentproto.Report
	images   *fakeImages
	image    *gophercloud.ServiceClient
	// objects is the object storage client given to the agent (nil
	// unless a test sets it before start).
	objects *gophercloud.ServiceClient
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	for _, tool := range []string{"qemu-storage-daemon", "qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; the volume agent tests run the real tools", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bsrv, err := bus.StartServer(bus.ServerConfig{Port: -1, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(ctx, bus.Config{Server: bsrv, Name: "volumeagent-test", Logger: quietLog()})
	if err != nil {
		bsrv.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close()
		bsrv.Shutdown()
	})
	h := &harness{t: t, bus: b, stateDir: filepath.Join(t.TempDir(), "volumes"), port: freePort(t),
		reports: make(chan agentproto.Report, 100), images: newFakeImages()}
	sub, err := bus.Consume(ctx, b, agentproto.SubjectReports, func(_ context.Context, r agentproto.Report) error {
		h.reports <- r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	srv := httptest.NewServer(h.images.handler())
	t.Cleanup(srv.Close)
	h.image = &gophercloud.ServiceClient{ProviderClient: &gophercloud.ProviderClient{TokenID: "svc"},
		Endpoint: srv.URL + "/", ResourceBase: srv.URL + "/v2/"}
	t.Cleanup(h.killDaemon)
	return h
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs an agent on the harness's state; it is stopped at the end.
func (h *harness) start() *volumeagent.Agent {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := volumeagent.Start(ctx, volumeagent.Config{Host: host, Zone: "nova", Bus: h.bus, StateDir: h.stateDir,
		NBDAddress: "127.0.0.1", NBDPort: h.port, Image: h.image, ObjectStore: h.objects, Heartbeat: time.Hour, HealthCheck: 100 * time.Millisecond,
		Log: quietLog()})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = a.Stop() })
	return a
}

// daemonPID reads the storage daemon's pidfile.
func (h *harness) daemonPID() int {
	b, err := os.ReadFile(filepath.Join(h.stateDir, "run", "qsd.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(bytes.TrimSpace(b)))
	return pid
}

func (h *harness) killDaemon() {
	if pid := h.daemonPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// do sends a command and waits for its report.
func (h *harness) do(cmd agentproto.Command) agentproto.Report {
	h.t.Helper()
	if cmd.ID == "" {
		cmd.ID = uuid.NewString()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := bus.CastDurable(ctx, h.bus, agentproto.HostSubject(host), cmd); err != nil {
		h.t.Fatal(err)
	}
	for {
		select {
		case r := <-h.reports:
			if r.CommandID == cmd.ID {
				return r
			}
		case <-ctx.Done():
			h.t.Fatalf("no report for %s %s", cmd.Op, cmd.ID)
		}
	}
}

func (h *harness) conn(req agentproto.ConnRequest) (*hypervisor.VolumeConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := bus.Call[agentproto.ConnRequest, agentproto.ConnReply](ctx, h.bus, agentproto.ConnSubject(host), req)
	return rep.Conn, err
}

func (h *harness) export(vol, initiator string) *hypervisor.VolumeConn {
	h.t.Helper()
	c, err := h.conn(agentproto.ConnRequest{Op: agentproto.OpExport, VolumeID: vol, Initiator: initiator})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		h.t.Fatalf("export answered an invalid connection: %v", err)
	}
	return c
}

// nbdIO runs qemu-io commands through the connection, as a compute host
// would reach the volume.
func nbdIO(t *testing.T, c *hypervisor.VolumeConn, key string, cmds ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keys.psk"), []byte(c.PSKIdentity+":"+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--object", "tls-creds-psk,id=t0,endpoint=client,dir=" + dir + ",username=" + c.PSKIdentity,
		"--image-opts", "driver=nbd,server.type=inet,server.host=" + c.Host + ",server.port=" + strconv.Itoa(c.Port) +
			",export=" + c.Export + ",tls-creds=t0"}
	for _, cmd := range cmds {
		args = append(args, "-c", cmd)
	}
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	return string(out), err
}

// fakeImages is the image API, as much as the agent uses.
type fakeImages struct {
	mu     sync.Mutex
	meta   map[string]map[string]any // guarded by mu
	bytes  map[string][]byte         // guarded by mu
	upload map[string][]byte         // guarded by mu
}

func newFakeImages() *fakeImages {
	return &fakeImages{meta: map[string]map[string]any{}, bytes: map[string][]byte{}, upload: map[string][]byte{}}
}

func (f *fakeImages) add(id string, data []byte, props map[string]any) {
	sum := sha256.Sum256(data)
	m := map[string]any{"id": id, "name": "img-" + id[:4], "status": "active", "disk_format": "qcow2",
		"container_format": "bare", "min_disk": 0, "min_ram": 0, "size": len(data), "checksum": "ignored",
		"os_hash_algo": "sha256", "os_hash_value": hex.EncodeToString(sum[:]), "visibility": "public"}
	for k, v := range props {
		m[k] = v
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.meta[id], f.bytes[id] = m, data
}

func (f *fakeImages) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/images/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		m, ok := f.meta[r.PathValue("id")]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(404)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(m)
	})
	mux.HandleFunc("GET /v2/images/{id}/file", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		b, ok := f.bytes[r.PathValue("id")]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(404)
			return
		}
		_, _ = w.Write(b)
	})
	mux.HandleFunc("PUT /v2/images/{id}/file", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.upload[r.PathValue("id")] = b
		f.mu.Unlock()
		w.WriteHeader(204)
	})
	return mux
}
