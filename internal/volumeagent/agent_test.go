package volumeagent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/bus"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

func volFile(h *harness, id string) string { return filepath.Join(h.stateDir, "volume-"+id+".qcow2") }

func virtualSize(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "-U", path).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img info: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "virtual size:") {
			return strings.Fields(l)[2] + " " + strings.Fields(l)[3]
		}
	}
	t.Fatalf("no virtual size in %s", out)
	return ""
}

func wrongKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func TestCreateAndDeleteAreIdempotent(t *testing.T) {
	h := newHarness(t)
	h.start()
	vol := uuid.NewString()
	create := agentproto.Command{ID: uuid.NewString(), Op: agentproto.OpCreate, VolumeID: vol, SizeGB: 1}
	for i := 0; i < 2; i++ { // the second is a redelivery of the same command
		r := h.do(create)
		if r.Status != agentproto.StatusAvailable || r.SizeGB != 1 || r.Fault != "" || r.Host != host {
			t.Fatalf("create #%d: %+v", i, r)
		}
	}
	if got := virtualSize(t, volFile(h, vol)); got != "1 GiB" {
		t.Fatalf("virtual size %s", got)
	}
	for i := 0; i < 2; i++ {
		if r := h.do(agentproto.Command{Op: agentproto.OpDelete, VolumeID: vol}); r.Status != agentproto.StatusDeleted {
			t.Fatalf("delete #%d: %+v", i, r)
		}
	}
	if _, err := os.Stat(volFile(h, vol)); !os.IsNotExist(err) {
		t.Fatalf("file left after delete: %v", err)
	}
	if r := h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: "../etc", SizeGB: 1}); r.Status != agentproto.StatusError || r.Fault == "" {
		t.Fatalf("bad id: %+v", r)
	}
}

func TestExportThroughNBDWithTLSPSK(t *testing.T) {
	h := newHarness(t)
	h.start()
	vol := uuid.NewString()
	h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: vol, SizeGB: 1})
	c := h.export(vol, "compute-1")
	if !strings.HasPrefix(c.Export, vol+"-") || c.Port != h.port || c.Host != "127.0.0.1" || !c.Discard {
		t.Fatalf("connection: %+v", c)
	}
	if again := h.export(vol, "compute-1"); *again != *c {
		t.Fatalf("second export to the same initiator: %+v, first %+v", again, c)
	}
	if out, err := nbdIO(t, c, c.PSKKey, "write -P 0x5a 0 64k", "read -P 0x5a 0 64k"); err != nil {
		t.Fatalf("qemu-io with the right key: %v\n%s", err, out)
	}
	if out, err := nbdIO(t, c, wrongKey(), "read 0 64k"); err == nil {
		t.Fatalf("qemu-io with a wrong key succeeded:\n%s", out)
	}
	other := h.export(vol, "compute-2")
	if other.Export == c.Export || other.PSKKey == c.PSKKey {
		t.Fatal("two initiators share an export or a key")
	}
	if _, err := h.conn(agentproto.ConnRequest{Op: agentproto.OpUnexport, VolumeID: vol, Initiator: "compute-1"}); err != nil {
		t.Fatal(err)
	}
	if out, err := nbdIO(t, c, c.PSKKey, "read 0 64k"); err == nil {
		t.Fatalf("an unexported connection still works:\n%s", out)
	}
	if out, err := nbdIO(t, other, other.PSKKey, "read -P 0x5a 0 64k"); err != nil {
		t.Fatalf("the other initiator lost its export: %v\n%s", err, out)
	}
	if _, err := h.conn(agentproto.ConnRequest{Op: agentproto.OpExport, VolumeID: uuid.NewString(), Initiator: "compute-1"}); err == nil {
		t.Fatal("export of a missing volume succeeded")
	}
	// Deleting the volume ends its exports.
	if r := h.do(agentproto.Command{Op: agentproto.OpDelete, VolumeID: vol}); r.Status != agentproto.StatusDeleted {
		t.Fatalf("delete: %+v", r)
	}
	if out, err := nbdIO(t, other, other.PSKKey, "read 0 64k"); err == nil {
		t.Fatalf("a deleted volume is still served:\n%s", out)
	}
}

func TestSnapshotOfAVolumeBeingWritten(t *testing.T) {
	h := newHarness(t)
	h.start()
	vol, snap, clone := uuid.NewString(), uuid.NewString(), uuid.NewString()
	h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: vol, SizeGB: 1})
	c := h.export(vol, "compute-1")
	if out, err := nbdIO(t, c, c.PSKKey, "write -P 0x11 0 4M"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	done := make(chan string, 1)
	go func() {
		var cmds []string
		for i := 0; i < 40; i++ {
			cmds = append(cmds, "write -P 0x22 4M 4M")
		}
		out, err := nbdIO(t, c, c.PSKKey, cmds...)
		if err != nil {
			done <- err.Error() + ": " + out
			return
		}
		done <- ""
	}()
	r := h.do(agentproto.Command{Op: agentproto.OpSnapshot, VolumeID: vol, SnapshotID: snap})
	if r.Status != agentproto.StatusAvailable || r.SizeGB != 1 {
		t.Fatalf("snapshot: %+v", r)
	}
	if msg := <-done; msg != "" {
		t.Fatalf("the guest's writes failed during the snapshot: %s", msg)
	}
	// A volume from the snapshot, grown on create, has the data.
	r = h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: clone, SourceSnapshotID: snap, SizeGB: 2})
	if r.Status != agentproto.StatusAvailable || r.SizeGB != 2 {
		t.Fatalf("volume from snapshot: %+v", r)
	}
	out, err := exec.Command("qemu-io", "-r", "-f", "qcow2", volFile(h, clone), "-c", "read -P 0x11 0 4M").CombinedOutput()
	if err != nil {
		t.Fatalf("the volume from the snapshot lacks the data: %v\n%s", err, out)
	}
	// Cloning the exported volume goes through the daemon too.
	clone2 := uuid.NewString()
	if r := h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: clone2, SourceVolumeID: vol, SizeGB: 1}); r.Status != agentproto.StatusAvailable {
		t.Fatalf("clone of an exported volume: %+v", r)
	}
	if r := h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: uuid.NewString(), SourceVolumeID: clone, SizeGB: 1}); r.Status != agentproto.StatusError || r.Fault == "" {
		t.Fatalf("clone into a smaller volume: %+v", r)
	}
	for i := 0; i < 2; i++ {
		if r := h.do(agentproto.Command{Op: agentproto.OpDeleteSnapshot, VolumeID: vol, SnapshotID: snap}); r.Status != agentproto.StatusDeleted {
			t.Fatalf("delete snapshot: %+v", r)
		}
	}
}

func TestExtend(t *testing.T) {
	h := newHarness(t)
	h.start()
	vol := uuid.NewString()
	h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: vol, SizeGB: 1})
	r := h.do(agentproto.Command{Op: agentproto.OpExtend, VolumeID: vol, SizeGB: 2, ReturnStatus: agentproto.StatusAvailable})
	if r.Status != agentproto.StatusAvailable || r.SizeGB != 2 || r.Fault != "" {
		t.Fatalf("extend: %+v", r)
	}
	if got := virtualSize(t, volFile(h, vol)); got != "2 GiB" {
		t.Fatalf("virtual size %s", got)
	}
	// Attached: NBD exports cannot change size; the volume stays as it is.
	h.export(vol, "compute-1")
	r = h.do(agentproto.Command{Op: agentproto.OpExtend, VolumeID: vol, SizeGB: 3, ReturnStatus: agentproto.StatusInUse})
	if r.Status != agentproto.StatusInUse || r.SizeGB != 2 || r.Fault == "" {
		t.Fatalf("extend of an attached volume: %+v", r)
	}
	if r := h.do(agentproto.Command{Op: agentproto.OpExtend, VolumeID: uuid.NewString(), SizeGB: 3}); r.Status != agentproto.StatusErrorExtending {
		t.Fatalf("extend of a missing volume: %+v", r)
	}
}

func TestRestartedAgentAdoptsTheDaemon(t *testing.T) {
	h := newHarness(t)
	a := h.start()
	vol := uuid.NewString()
	h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: vol, SizeGB: 1})
	c := h.export(vol, "compute-1")
	pid := h.daemonPID()
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	// The volume stays served while no agent runs.
	if out, err := nbdIO(t, c, c.PSKKey, "write -P 0x33 0 64k"); err != nil {
		t.Fatalf("export lost when the agent stopped: %v\n%s", err, out)
	}
	a2 := h.start()
	if a2.DaemonPID() != pid {
		t.Fatalf("a second daemon %d was started; the first was %d", a2.DaemonPID(), pid)
	}
	if again := h.export(vol, "compute-1"); *again != *c {
		t.Fatalf("the restarted agent answers another connection: %+v, was %+v", again, c)
	}
	if out, err := nbdIO(t, c, c.PSKKey, "read -P 0x33 0 64k"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestKilledDaemonComesBackWithItsExports(t *testing.T) {
	h := newHarness(t)
	a := h.start()
	vol := uuid.NewString()
	h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: vol, SizeGB: 1})
	c := h.export(vol, "compute-1")
	if out, err := nbdIO(t, c, c.PSKKey, "write -P 0x44 0 64k"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pid := a.DaemonPID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if p := a.DaemonPID(); p != 0 && p != pid {
			if out, err := nbdIO(t, c, c.PSKKey, "read -P 0x44 0 64k"); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("export not back after the daemon's restart: %v\n%s", err, out)
			}
		} else if time.Now().After(deadline) {
			t.Fatal("the daemon was not restarted")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestInterruptedCreateNeverLooksFinished(t *testing.T) {
	h := newHarness(t)
	vol := uuid.NewString()
	// What a crash mid-create leaves: a half-written part file.
	if err := os.MkdirAll(h.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(h.stateDir, ".volume-"+vol+".qcow2.part")
	if err := os.WriteFile(part, []byte("QFI\xfbhalf"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := h.start()
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Fatalf("the part file survived the restart: %v", err)
	}
	if _, err := h.conn(agentproto.ConnRequest{Op: agentproto.OpExport, VolumeID: vol, Initiator: "c"}); err == nil {
		t.Fatal("a volume never finished can be exported")
	}
	_ = a
	// The redelivered create makes it whole.
	if r := h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: vol, SizeGB: 1}); r.Status != agentproto.StatusAvailable {
		t.Fatalf("create after the crash: %+v", r)
	}
	// A create that fails (image too large) leaves nothing behind.
	img := uuid.NewString()
	h.images.add(img, qcow2Bytes(t, "3G"), nil)
	bad := uuid.NewString()
	r := h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: bad, ImageID: img, SizeGB: 1})
	if r.Status != agentproto.StatusError || !strings.Contains(r.Fault, "larger than the volume") {
		t.Fatalf("image larger than the volume: %+v", r)
	}
	entries, _ := os.ReadDir(h.stateDir)
	for _, e := range entries {
		if strings.Contains(e.Name(), bad) || strings.HasSuffix(e.Name(), ".part") {
			t.Fatalf("a failed create left %s", e.Name())
		}
	}
}

// qcow2Bytes is a qcow2 image of the given virtual size with a marker at
// offset 0.
func qcow2Bytes(t *testing.T, size string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", p, size).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := exec.Command("qemu-io", "-f", "qcow2", p, "-c", "write -P 0x77 0 64k").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVolumeFromImageAndUpload(t *testing.T) {
	h := newHarness(t)
	h.start()
	img, vol := uuid.NewString(), uuid.NewString()
	h.images.add(img, qcow2Bytes(t, "64M"), map[string]any{"kernel_id": "k-1", "ramdisk_id": "r-1",
		"os_command_line": "root=/dev/vda", "hw_disk_bus": "scsi"})
	r := h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: vol, ImageID: img, SizeGB: 1})
	if r.Status != agentproto.StatusAvailable || r.SizeGB != 1 {
		t.Fatalf("from image: %+v", r)
	}
	md := r.ImageMetadata
	for k, want := range map[string]string{"image_id": img, "image_name": "img-" + img[:4], "disk_format": "qcow2",
		"container_format": "bare", "min_disk": "0", "kernel_id": "k-1", "ramdisk_id": "r-1",
		"os_command_line": "root=/dev/vda", "hw_disk_bus": "scsi", "checksum": "ignored"} {
		if md[k] != want {
			t.Errorf("image metadata %s = %q, want %q (all: %v)", k, md[k], want, md)
		}
	}
	if _, ok := md["os_hash_value"]; ok {
		t.Errorf("core field leaked into the metadata: %v", md)
	}
	out, err := exec.Command("qemu-io", "-r", "-f", "qcow2", volFile(h, vol), "-c", "read -P 0x77 0 64k").CombinedOutput()
	if err != nil {
		t.Fatalf("the volume lacks the image's data: %v\n%s", err, out)
	}
	// Corrupt bytes are refused.
	h.images.mu.Lock()
	h.images.bytes[img] = append([]byte(nil), h.images.bytes[img]...)
	h.images.bytes[img][100] ^= 0xff
	h.images.mu.Unlock()
	if r := h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: uuid.NewString(), ImageID: img, SizeGB: 1}); r.Status != agentproto.StatusError || !strings.Contains(r.Fault, "checksum") {
		t.Fatalf("corrupt image: %+v", r)
	}

	// Upload while attached: the copy comes through the daemon.
	h.export(vol, "compute-1")
	target := uuid.NewString()
	r = h.do(agentproto.Command{Op: agentproto.OpUpload, VolumeID: vol, ReturnStatus: agentproto.StatusInUse,
		Upload: &agentproto.Upload{ImageID: target, DiskFormat: "qcow2"}})
	if r.Status != agentproto.StatusInUse || r.Fault != "" {
		t.Fatalf("upload: %+v", r)
	}
	h.images.mu.Lock()
	up := h.images.upload[target]
	h.images.mu.Unlock()
	p := filepath.Join(t.TempDir(), "up.qcow2")
	if err := os.WriteFile(p, up, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-io", "-r", "-f", "qcow2", p, "-c", "read -P 0x77 0 64k").CombinedOutput(); err != nil || !bytes.HasPrefix(up, []byte("QFI\xfb")) {
		t.Fatalf("uploaded image lacks the data: %v\n%s", err, out)
	}
	if r := h.do(agentproto.Command{Op: agentproto.OpUpload, VolumeID: vol, ReturnStatus: agentproto.StatusInUse,
		Upload: &agentproto.Upload{ImageID: target, DiskFormat: "bogus"}}); r.Status != agentproto.StatusInUse || r.Fault == "" {
		t.Fatalf("upload to a bad format: %+v", r)
	}
}

func TestRestartDropsExportsNobodyHolds(t *testing.T) {
	h := newHarness(t)
	a := h.start()
	vol := uuid.NewString()
	h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: vol, SizeGB: 1})
	c := h.export(vol, "compute-1")
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	// The records say nothing is exported (as after an unexport whose
	// daemon step was lost): the daemon's export must go.
	if err := os.WriteFile(filepath.Join(h.stateDir, "exports.json"), []byte("[]"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.start()
	if out, err := nbdIO(t, c, c.PSKKey, "read 0 64k"); err == nil {
		t.Fatalf("an export nobody holds survived the restart:\n%s", out)
	}
	if again := h.export(vol, "compute-1"); again.Export == c.Export {
		t.Fatal("a dropped export came back under its old name")
	}
}

func TestHeartbeatReportsCapacityAndFiles(t *testing.T) {
	h := newHarness(t)
	a := h.start()
	vol, snap := uuid.NewString(), uuid.NewString()
	h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: vol, SizeGB: 2})
	h.do(agentproto.Command{Op: agentproto.OpSnapshot, VolumeID: vol, SnapshotID: snap})
	beats := make(chan agentproto.Heartbeat, 10)
	sub, err := bus.Subscribe(h.bus, agentproto.SubjectHeartbeat, "", func(_ context.Context, hb agentproto.Heartbeat) error {
		beats <- hb
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := a.Beat(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case hb := <-beats:
		if hb.Host != host || hb.Backend != "file" || hb.Pool != "default" || hb.Zone != "nova" ||
			hb.TotalGB <= 0 || hb.FreeGB <= 0 || hb.ProvisionedGB != 4 || hb.MaxOverSubscription != 10 ||
			len(hb.Volumes) != 1 || hb.Volumes[0] != vol || len(hb.Snapshots) != 1 || hb.Snapshots[0] != snap {
			t.Fatalf("heartbeat: %+v", hb)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat")
	}
}
