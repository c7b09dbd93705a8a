package storaged_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/storaged"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// needTools skips when the QEMU tools this package drives are missing:
// they are part of every storage host, but not of every build machine.
func needTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"qemu-storage-daemon", "qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; the storage daemon tests run a real one", tool)
		}
	}
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

// openDaemon starts a daemon in a temporary run dir and stops it (by its
// pid, whatever the test did to it) at the end.
func openDaemon(t *testing.T) (*storaged.Daemon, storaged.Config) {
	t.Helper()
	needTools(t)
	cfg := storaged.Config{RunDir: filepath.Join(t.TempDir(), "run"), NBDAddress: "127.0.0.1", NBDPort: freePort(t), Log: quietLog()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, started, err := storaged.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !started {
		t.Fatal("a fresh run dir adopted a daemon")
	}
	t.Cleanup(func() { shutdown(t, cfg) })
	return d, cfg
}

// shutdown kills the daemon named by the run dir's pidfile.
func shutdown(t *testing.T, cfg storaged.Config) {
	b, err := os.ReadFile(filepath.Join(cfg.RunDir, "qsd.pid"))
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(string(bytes.TrimSpace(b))); err == nil && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newQcow2(t *testing.T, path, size string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", "create", "-f", "qcow2", path, size).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
}

// nbdIO runs qemu-io commands against an export through NBD with TLS-PSK
// as identity/key.
func nbdIO(t *testing.T, cfg storaged.Config, export, identity, key string, cmds ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keys.psk"), []byte(identity+":"+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--object", "tls-creds-psk,id=t0,endpoint=client,dir=" + dir + ",username=" + identity,
		"--image-opts", "driver=nbd,server.type=inet,server.host=" + cfg.NBDAddress + ",server.port=" + strconv.Itoa(cfg.NBDPort) +
			",export=" + export + ",tls-creds=t0"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	return string(out), err
}

func TestExportNeedsTheRightKey(t *testing.T) {
	d, cfg := openDaemon(t)
	ctx := context.Background()
	vol := filepath.Join(t.TempDir(), "v.qcow2")
	newQcow2(t, vol, "64M")
	if err := d.AddQcow2(ctx, "vtest", vol, false); err != nil {
		t.Fatal(err)
	}
	if err := d.AddQcow2(ctx, "vtest", vol, false); err != nil {
		t.Fatalf("second add of the same node: %v", err)
	}
	if err := d.AddExport(ctx, "x-e1", "vtest", "e1", true); err != nil {
		t.Fatal(err)
	}
	if err := d.AddExport(ctx, "x-e1", "vtest", "e1", true); err != nil {
		t.Fatalf("second add of the same export: %v", err)
	}
	key := randomKey()
	if err := d.SetKeys(map[string]string{"vol-e1": key}); err != nil {
		t.Fatal(err)
	}
	if out, err := nbdIO(t, cfg, "e1", "vol-e1", key, "write -P 0x5a 0 64k", "read -P 0x5a 0 64k"); err != nil {
		t.Fatalf("qemu-io with the right key: %v\n%s", err, out)
	}
	if out, err := nbdIO(t, cfg, "e1", "vol-e1", randomKey(), "read 0 64k"); err == nil {
		t.Fatalf("qemu-io with a wrong key succeeded:\n%s", out)
	}
	// A key dropped from the file stops working at the next handshake.
	if err := d.SetKeys(nil); err != nil {
		t.Fatal(err)
	}
	if out, err := nbdIO(t, cfg, "e1", "vol-e1", key, "read 0 64k"); err == nil {
		t.Fatalf("qemu-io with a removed key succeeded:\n%s", out)
	}
	if err := d.DelExport(ctx, "x-e1"); err != nil {
		t.Fatal(err)
	}
	if err := d.DelExport(ctx, "x-e1"); err != nil {
		t.Fatalf("second delete of an export: %v", err)
	}
	if err := d.DelNode(ctx, "vtest"); err != nil {
		t.Fatal(err)
	}
	if err := d.DelNode(ctx, "vtest"); err != nil {
		t.Fatalf("second delete of a node: %v", err)
	}
	if nodes, err := d.Nodes(ctx); err != nil || len(nodes) != 0 {
		t.Fatalf("nodes left: %v %v", nodes, err)
	}
}

func TestAdoptAndRestart(t *testing.T) {
	d, cfg := openDaemon(t)
	ctx := context.Background()
	vol := filepath.Join(t.TempDir(), "v.qcow2")
	newQcow2(t, vol, "16M")
	if err := d.AddQcow2(ctx, "vkeep", vol, false); err != nil {
		t.Fatal(err)
	}
	pid := d.PID()
	d.Close()
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("daemon %d did not outlive its client", pid)
	}
	d2, started, err := storaged.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if started || d2.PID() != pid {
		t.Fatalf("not adopted: started=%v pid %d, was %d", started, d2.PID(), pid)
	}
	if nodes, _ := d2.Nodes(ctx); nodes["vkeep"].File != vol {
		t.Fatalf("adopted daemon lost its node: %v", nodes)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for d2.Healthy() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if d2.Healthy() {
		t.Fatal("a killed daemon still looks healthy")
	}
	re, err := d2.Ensure(ctx)
	if err != nil || !re {
		t.Fatalf("ensure after kill: reconnected=%v err=%v", re, err)
	}
	if d2.PID() == pid || !d2.Healthy() {
		t.Fatalf("no new daemon: pid %d", d2.PID())
	}
	if re, err := d2.Ensure(ctx); err != nil || re {
		t.Fatalf("ensure of a healthy daemon: reconnected=%v err=%v", re, err)
	}
}

func TestBackupWhileWritten(t *testing.T) {
	d, cfg := openDaemon(t)
	ctx := context.Background()
	dir := t.TempDir()
	vol, snap := filepath.Join(dir, "v.qcow2"), filepath.Join(dir, "s.qcow2")
	newQcow2(t, vol, "64M")
	newQcow2(t, snap, "64M")
	if err := d.AddQcow2(ctx, "vbusy", vol, false); err != nil {
		t.Fatal(err)
	}
	if err := d.AddExport(ctx, "x-busy", "vbusy", "busy", true); err != nil {
		t.Fatal(err)
	}
	key := randomKey()
	if err := d.SetKeys(map[string]string{"id-busy": key}); err != nil {
		t.Fatal(err)
	}
	if out, err := nbdIO(t, cfg, "busy", "id-busy", key, "write -P 0x11 0 1M"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// A writer keeps overwriting the start of the disk with 0x22 while
	// the backup runs; the snapshot must hold 0x11 or 0x22 per write, and
	// the export must keep working.
	done := make(chan error, 1)
	go func() {
		var cmds []string
		for i := 0; i < 50; i++ {
			cmds = append(cmds, "write -P 0x22 0 1M")
		}
		out, err := nbdIO(t, cfg, "busy", "id-busy", key, cmds...)
		if err != nil {
			err = &writeErr{err, out}
		}
		done <- err
	}()
	if err := d.Backup(ctx, "vbusy", snap); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("writer during backup: %v", err)
	}
	if nodes, _ := d.Nodes(ctx); len(nodes) != 1 {
		t.Fatalf("backup left nodes behind: %v", nodes)
	}
	out, err := exec.Command("qemu-io", "-r", "-f", "qcow2", snap, "-c", "read -v 0 512").CombinedOutput()
	if err != nil {
		t.Fatalf("read snapshot: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("11 11 11 11")) && !bytes.Contains(out, []byte("22 22 22 22")) {
		t.Fatalf("snapshot does not hold the written data:\n%s", out)
	}
}

type writeErr struct {
	err error
	out string
}

func (e *writeErr) Error() string { return e.err.Error() + ": " + e.out }
