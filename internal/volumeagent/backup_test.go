package volumeagent_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

const (
	account   = "AUTH_proj"
	userToken = "user-token"
	chunkSize = 1 << 20
)

// qemuIO runs qemu-io on a volume file the daemon does not hold.
func qemuIO(t *testing.T, file string, cmds ...string) {
	t.Helper()
	args := []string{"-f", "qcow2", file}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	if out, err := exec.Command("qemu-io", args...).CombinedOutput(); err != nil || strings.Contains(string(out), "failed") {
		t.Fatalf("qemu-io %v: %v\n%s", cmds, err, out)
	}
}

// sameContents compares two volume files; extra bytes of the larger one
// must be zeros, as after a restore into a bigger volume.
func sameContents(t *testing.T, a, b string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", "compare", "-U", "-f", "qcow2", "-F", "qcow2", a, b).CombinedOutput(); err != nil {
		t.Fatalf("%s and %s differ: %v\n%s", a, b, err, out)
	}
}

func newBackup(prefix string) *agentproto.Backup {
	return &agentproto.Backup{ID: uuid.NewString(), Account: account, Container: "volumebackups", Prefix: prefix,
		Token: userToken, ChunkSize: chunkSize}
}

// TestBackupRestoreDelete: a backup stores only the chunks that hold
// data, with the requester's token, and a manifest with their sha256; a
// restore into a new, larger volume gives the same bytes; an incremental
// backup stores only the changed chunk and restores the newer bytes;
// deleting it leaves the parent's objects; a corrupt object fails a
// restore without touching the volume.
func TestBackupRestoreDelete(t *testing.T) {
	h := newHarness(t)
	sw, client := newFakeSwift(t, map[string]string{userToken: account})
	h.objects = client
	h.start()
	vol := uuid.NewString()
	h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: vol, SizeGB: 1})
	qemuIO(t, volFile(h, vol), "write -P 0xab 0 1536k", "write -P 0xcd 100M 4k")

	full := newBackup("volume_" + vol + "/20261127/az_nova_backup_1")
	r := h.do(agentproto.Command{Op: agentproto.OpBackup, VolumeID: vol, ReturnStatus: "available", Backup: full})
	// Data in chunks 0, 1 and 100: three chunk objects and the manifest.
	if r.BackupStatus != agentproto.StatusAvailable || r.Status != "available" || r.ObjectCount != 4 || r.SizeGB != 1 || r.BackupID != full.ID || r.Fault != "" {
		t.Fatalf("backup: %+v", r)
	}
	objs := sw.names(account, "volumebackups", full.Prefix+"/")
	if len(objs) != 4 {
		t.Fatalf("objects %v", objs)
	}
	var m struct {
		SizeBytes int64 `json:"size_bytes"`
		Chunks    []struct {
			Offset int64  `json:"offset"`
			SHA256 string `json:"sha256"`
			Object string `json:"object"`
		} `json:"chunks"`
	}
	if err := json.Unmarshal(sw.object(account, "volumebackups", full.Prefix+"/metadata"), &m); err != nil {
		t.Fatal(err)
	}
	if m.SizeBytes != 1<<30 || len(m.Chunks) != 3 || m.Chunks[2].Offset != 100<<20 || len(m.Chunks[0].SHA256) != 64 {
		t.Fatalf("manifest %+v", m)
	}

	restored := uuid.NewString()
	r = h.do(agentproto.Command{Op: agentproto.OpRestore, VolumeID: restored, SizeGB: 2, Backup: full})
	if r.Status != agentproto.StatusAvailable || r.SizeGB != 2 || r.Fault != "" {
		t.Fatalf("restore: %+v", r)
	}
	if got := virtualSize(t, volFile(h, restored)); got != "2 GiB" {
		t.Fatalf("restored size %s", got)
	}
	sameContents(t, volFile(h, vol), volFile(h, restored))

	// An incremental backup after one chunk changed.
	qemuIO(t, volFile(h, vol), "write -P 0xef 1M 4k")
	inc := newBackup("volume_" + vol + "/20261128/az_nova_backup_2")
	inc.ParentPrefix = full.Prefix
	r = h.do(agentproto.Command{Op: agentproto.OpBackup, VolumeID: vol, ReturnStatus: "available", Backup: inc})
	if r.BackupStatus != agentproto.StatusAvailable || r.ObjectCount != 2 {
		t.Fatalf("incremental backup: %+v", r)
	}
	r = h.do(agentproto.Command{Op: agentproto.OpRestore, VolumeID: restored, SizeGB: 2, Backup: inc})
	if r.Status != agentproto.StatusAvailable {
		t.Fatalf("restore of the incremental backup: %+v", r)
	}
	sameContents(t, volFile(h, vol), volFile(h, restored))

	// Deleting the increment leaves the parent whole; a second delete is
	// a no-op.
	for i := 0; i < 2; i++ {
		if r := h.do(agentproto.Command{Op: agentproto.OpDeleteBackup, VolumeID: vol, Backup: inc}); r.BackupStatus != agentproto.StatusDeleted {
			t.Fatalf("delete incremental #%d: %+v", i, r)
		}
	}
	if left := sw.names(account, "volumebackups", inc.Prefix+"/"); len(left) != 0 {
		t.Fatalf("objects left %v", left)
	}
	if left := sw.names(account, "volumebackups", full.Prefix+"/"); len(left) != 4 {
		t.Fatalf("the parent lost objects: %v", left)
	}

	// A corrupt chunk fails the restore and leaves the volume as it was.
	before := uuid.NewString()
	h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: before, SizeGB: 1})
	sw.setObject(account, "volumebackups", m.Chunks[0].Object, []byte("garbage"))
	r = h.do(agentproto.Command{Op: agentproto.OpRestore, VolumeID: before, SizeGB: 1, Backup: full})
	if r.Status != agentproto.StatusErrorRestoring || !strings.Contains(r.Fault, "corrupt") {
		t.Fatalf("restore of a corrupt backup: %+v", r)
	}
	qemuIO(t, volFile(h, before), "read -P 0 0 2M")

	// Another project's token is refused by object storage.
	other := newBackup("volume_" + vol + "/x/az_nova_backup_3")
	other.Token = "stranger"
	r = h.do(agentproto.Command{Op: agentproto.OpBackup, VolumeID: vol, ReturnStatus: "in-use", Backup: other})
	if r.BackupStatus != agentproto.StatusError || r.Status != "in-use" || !strings.Contains(r.Fault, "403") {
		t.Fatalf("backup with a foreign token: %+v", r)
	}
	if r := h.do(agentproto.Command{Op: agentproto.OpDeleteBackup, VolumeID: vol, Backup: full}); r.BackupStatus != agentproto.StatusDeleted {
		t.Fatalf("delete: %+v", r)
	}
	if left := sw.names(account, "volumebackups", ""); len(left) != 0 {
		t.Fatalf("objects left %v", left)
	}
}

// TestBackupOfAttachedVolumeAndSnapshot: a volume a compute host has open
// is read through the storage daemon's consistent copy while it is
// written; a snapshot is read from its file; both restore to their bytes.
// Without a token the agent uses its service credentials.
func TestBackupOfAttachedVolumeAndSnapshot(t *testing.T) {
	h := newHarness(t)
	sw, client := newFakeSwift(t, map[string]string{"svc-token": account})
	h.objects = client
	h.start()
	vol, snap := uuid.NewString(), uuid.NewString()
	h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: vol, SizeGB: 1})
	c := h.export(vol, "compute-1")
	if out, err := nbdIO(t, c, c.PSKKey, "write -P 0x5a 0 3M"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r := h.do(agentproto.Command{Op: agentproto.OpSnapshot, VolumeID: vol, SnapshotID: snap}); r.Status != agentproto.StatusAvailable {
		t.Fatalf("snapshot: %+v", r)
	}
	if out, err := nbdIO(t, c, c.PSKKey, "write -P 0x6b 0 1M"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	live := newBackup("live")
	live.Token = ""
	r := h.do(agentproto.Command{Op: agentproto.OpBackup, VolumeID: vol, ReturnStatus: "in-use", Backup: live})
	if r.BackupStatus != agentproto.StatusAvailable || r.Status != "in-use" || r.ObjectCount != 4 {
		t.Fatalf("backup of an attached volume: %+v", r)
	}
	fromSnap := newBackup("snap")
	fromSnap.Token = ""
	r = h.do(agentproto.Command{Op: agentproto.OpBackup, VolumeID: vol, SnapshotID: snap, ReturnStatus: "available", Backup: fromSnap})
	if r.BackupStatus != agentproto.StatusAvailable {
		t.Fatalf("backup of a snapshot: %+v", r)
	}
	a, b := uuid.NewString(), uuid.NewString()
	for id, bk := range map[string]*agentproto.Backup{a: live, b: fromSnap} {
		if r := h.do(agentproto.Command{Op: agentproto.OpRestore, VolumeID: id, SizeGB: 1, Backup: bk}); r.Status != agentproto.StatusAvailable {
			t.Fatalf("restore %s: %+v", bk.Prefix, r)
		}
	}
	qemuIO(t, volFile(h, a), "read -P 0x6b 0 1M", "read -P 0x5a 1M 2M")
	qemuIO(t, volFile(h, b), "read -P 0x5a 0 3M")
	// The attached volume cannot be restored into.
	if r := h.do(agentproto.Command{Op: agentproto.OpRestore, VolumeID: vol, SizeGB: 1, Backup: live}); r.Status != agentproto.StatusErrorRestoring || !strings.Contains(r.Fault, "attached") {
		t.Fatalf("restore into an attached volume: %+v", r)
	}
	if len(sw.names(account, "volumebackups", "")) != 8 {
		t.Fatalf("objects %v", sw.names(account, "volumebackups", ""))
	}
}

// TestBackupWithoutObjectStorage: a host without object storage fails
// backups with a fault and leaves the volume's status as it was.
func TestBackupWithoutObjectStorage(t *testing.T) {
	h := newHarness(t)
	h.start()
	vol := uuid.NewString()
	h.do(agentproto.Command{Op: agentproto.OpCreate, VolumeID: vol, SizeGB: 1})
	r := h.do(agentproto.Command{Op: agentproto.OpBackup, VolumeID: vol, ReturnStatus: "available", Backup: newBackup("p")})
	if r.BackupStatus != agentproto.StatusError || r.Status != "available" || !strings.Contains(r.Fault, "object storage") {
		t.Fatalf("backup: %+v", r)
	}
	r = h.do(agentproto.Command{Op: agentproto.OpBackup, VolumeID: vol, ReturnStatus: "available"})
	if r.BackupStatus != agentproto.StatusError || r.Fault == "" {
		t.Fatalf("backup without a location: %+v", r)
	}
	r = h.do(agentproto.Command{Op: agentproto.OpDeleteBackup, VolumeID: vol, Backup: newBackup("p")})
	if r.BackupStatus != agentproto.StatusErrorDeleting {
		t.Fatalf("delete: %+v", r)
	}
}
