package volume_test

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
	"github.com/nimbus-cloud/nimbus/internal/volume/fakeagent"
)

// Tempest's backup schemas (tempest/lib/api_schema/response/volume/backups.py),
// decoded strictly.
type backupSummarySchema struct {
	ID    string  `json:"id"`
	Links []link  `json:"links"`
	Name  *string `json:"name"`
}

type backupCreateResp struct {
	Backup backupSummarySchema `json:"backup"`
}

type backupSchema struct {
	Status              string  `json:"status"`
	ObjectCount         int     `json:"object_count"`
	Container           *string `json:"container"`
	Description         *string `json:"description"`
	Links               []link  `json:"links"`
	AvailabilityZone    *string `json:"availability_zone"`
	CreatedAt           string  `json:"created_at"`
	UpdatedAt           *string `json:"updated_at"`
	Name                *string `json:"name"`
	HasDependentBackups bool    `json:"has_dependent_backups"`
	VolumeID            string  `json:"volume_id"`
	FailReason          *string `json:"fail_reason"`
	Size                int     `json:"size"`
	ID                  string  `json:"id"`
	IsIncremental       bool    `json:"is_incremental"`
	DataTimestamp       *string `json:"data_timestamp"`
	SnapshotID          *string `json:"snapshot_id"`
}

type backupShowResp struct {
	Backup backupSchema `json:"backup"`
}

type backupListResp struct {
	Backups      []backupSummarySchema `json:"backups"`
	BackupsLinks []link                `json:"backups_links"`
}

type backupDetailListResp struct {
	Backups      []backupSchema `json:"backups"`
	BackupsLinks []link         `json:"backups_links"`
}

type restoreResp struct {
	Restore struct {
		BackupID   string `json:"backup_id"`
		VolumeID   string `json:"volume_id"`
		VolumeName string `json:"volume_name"`
	} `json:"restore"`
}

type exportResp struct {
	Record struct {
		Service string `json:"backup_service"`
		URL     string `json:"backup_url"`
	} `json:"backup-record"`
}

// createBackup posts a backup and returns its id (without waiting).
func (h *harness) createBackup(token string, body map[string]any) string {
	h.t.Helper()
	var created backupCreateResp
	h.strict(token, "POST", path(token, "/backups"), map[string]any{"backup": body}, 202, &created)
	if len(created.Backup.Links) != 2 {
		h.t.Fatalf("backup links %+v", created.Backup.Links)
	}
	return created.Backup.ID
}

func (h *harness) waitBackup(token, id, want string) backupSchema {
	h.t.Helper()
	var shown backupShowResp
	h.eventually("backup "+id+" "+want, func() bool {
		h.strict(token, "GET", path(token, "/backups/"+id), nil, 200, &shown)
		if shown.Backup.Status == "error" && want != "error" {
			h.t.Fatalf("backup %s went to error: %v", id, shown.Backup.FailReason)
		}
		return shown.Backup.Status == want
	})
	return shown.Backup
}

// TestBackupCreateShowListRestoreDelete is
// test_volume_backup_create_get_detailed_list_restore_delete and
// test_bootable_volume_backup_and_restore: the volume is backing-up and
// back, show and both lists match the schemas, a restore without a target
// makes a volume named restore_backup_<id> with the source's metadata and
// bootable flag, a restore into a volume overwrites it, and a delete
// removes the objects.
func TestBackupCreateShowListRestoreDelete(t *testing.T) {
	h := newHarness(t)
	meta := map[string]string{"vol-meta1": "value1", "vol-meta2": "value2"}
	vol := h.createVolume("a", map[string]any{"size": 1, "imageRef": imageActive, "metadata": meta}, "available")["id"].(string)
	id := h.createBackup("a", map[string]any{"volume_id": vol, "name": "b1", "description": "first", "container": "container"})
	bk := h.waitBackup("a", id, "available")
	h.waitVolume("a", vol, "available")
	if *bk.Name != "b1" || *bk.Description != "first" || *bk.Container != "container" || bk.Size != 1 || bk.VolumeID != vol ||
		bk.IsIncremental || bk.HasDependentBackups || bk.ObjectCount < 1 || bk.FailReason != nil || *bk.AvailabilityZone != "nova" {
		t.Fatalf("shown %+v", bk)
	}
	var detail backupDetailListResp
	h.strict("a", "GET", path("a", "/backups/detail"), nil, 200, &detail)
	if len(detail.Backups) != 1 || detail.Backups[0].ID != id {
		t.Fatalf("detail list %+v", detail)
	}
	var list backupListResp
	h.strict("a", "GET", path("a", "/backups?name=b1"), nil, 200, &list)
	if len(list.Backups) != 1 || list.Backups[0].ID != id {
		t.Fatalf("list %+v", list)
	}
	h.strict("b", "GET", path("b", "/backups"), nil, 200, &list)
	if len(list.Backups) != 0 {
		t.Fatalf("another project sees %+v", list)
	}
	h.fail("b", "GET", path("b", "/backups/"+id), nil, 404)

	var rr restoreResp
	h.strict("a", "POST", path("a", "/backups/"+id+"/restore"), map[string]any{"restore": map[string]any{}}, 202, &rr)
	if rr.Restore.BackupID != id || rr.Restore.VolumeName != "restore_backup_"+id {
		t.Fatalf("restore %+v", rr)
	}
	h.waitBackup("a", id, "available")
	restored := h.waitVolume("a", rr.Restore.VolumeID, "available")
	got := restored["metadata"].(map[string]any)
	for k, v := range meta {
		if got[k] != v {
			t.Fatalf("restored metadata %v, want %v", got, meta)
		}
	}
	if restored["bootable"] != "true" || restored["size"].(float64) != 1 {
		t.Fatalf("restored volume %v", restored)
	}

	// Into an existing volume: it must be available and big enough.
	small := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	h.json("admin", "POST", path("admin", "/volumes/"+small+"/action"), map[string]any{"os-reset_status": map[string]any{"status": "error"}}, 202)
	h.fail("a", "POST", path("a", "/backups/"+id+"/restore"), map[string]any{"restore": map[string]any{"volume_id": small}}, 400)
	h.json("admin", "POST", path("admin", "/volumes/"+small+"/action"), map[string]any{"os-reset_status": map[string]any{"status": "available"}}, 202)
	h.strict("a", "POST", path("a", "/backups/"+id+"/restore"), map[string]any{"restore": map[string]any{"volume_id": small}}, 202, &rr)
	if rr.Restore.VolumeID != small || rr.Restore.VolumeName != "" {
		t.Fatalf("restore into a volume %+v", rr)
	}
	h.waitBackup("a", id, "available")
	if v := h.waitVolume("a", small, "available"); v["bootable"] != "true" {
		t.Fatalf("volume restored into %v", v)
	}
	h.fail("a", "POST", path("a", "/backups/"+id+"/restore"), map[string]any{"restore": map[string]any{"volume_id": "00000000-0000-4000-8000-000000000000"}}, 404)
	h.fail("a", "POST", path("a", "/backups/"+id+"/restore"), map[string]any{}, 400)

	loc := agentproto.Backup{Account: "AUTH_" + projA, Container: "container"}
	agent := h.agents["stor1"]
	var prefix string
	for _, c := range agent.Commands() {
		if c.Op == agentproto.OpBackup {
			prefix = c.Backup.Prefix
			if c.Backup.Token != "a" || c.Backup.Account != loc.Account || c.Backup.ChunkSize != 0 {
				t.Fatalf("backup command %+v", c.Backup)
			}
		}
	}
	loc.Prefix = prefix
	if !strings.HasPrefix(prefix, "volume_"+vol+"/") || !strings.HasSuffix(prefix, "_backup_"+id) || !agent.HasBackup(loc) {
		t.Fatalf("backup objects at %q", prefix)
	}
	h.json("a", "DELETE", path("a", "/backups/"+id), nil, 202)
	h.waitGone("a", path("a", "/backups/"+id))
	if agent.HasBackup(loc) {
		t.Fatal("the backup's objects outlived it")
	}
}

// TestBackupNegative: bad bodies are 400s, unknown volumes and backups
// 404s, an in-use volume needs force, and a busy volume or backup refuses.
func TestBackupNegative(t *testing.T) {
	h := newHarness(t)
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	h.fail("a", "POST", path("a", "/backups"), map[string]any{"backup": map[string]any{}}, 400)
	h.fail("a", "POST", path("a", "/backups"), map[string]any{"nope": map[string]any{}}, 400)
	h.fail("a", "POST", path("a", "/backups"), map[string]any{"backup": map[string]any{"volume_id": "00000000-0000-4000-8000-000000000000"}}, 404)
	h.fail("b", "POST", path("b", "/backups"), map[string]any{"backup": map[string]any{"volume_id": vol}}, 404)
	h.fail("a", "POST", path("a", "/backups"), map[string]any{"backup": map[string]any{"volume_id": vol, "container": "a/b"}}, 400)
	h.fail("a", "POST", path("a", "/backups"), map[string]any{"backup": map[string]any{"volume_id": vol, "force": "maybe"}}, 400)
	h.fail("a", "POST", path("a", "/backups"), map[string]any{"backup": map[string]any{"volume_id": vol, "incremental": true}}, 400)
	h.fail("ra", "POST", path("ra", "/backups"), map[string]any{"backup": map[string]any{"volume_id": vol}}, 403)
	h.fail("a", "GET", path("a", "/backups/nonexistent"), nil, 404)
	h.fail("a", "DELETE", path("a", "/backups/00000000-0000-4000-8000-000000000000"), nil, 404)

	h.json("admin", "POST", path("admin", "/volumes/"+vol+"/action"), map[string]any{"os-reset_status": map[string]any{"status": "in-use"}}, 202)
	msg := h.fail("a", "POST", path("a", "/backups"), map[string]any{"backup": map[string]any{"volume_id": vol}}, 400)
	if !strings.Contains(msg, "force") {
		t.Fatalf("in-use without force: %q", msg)
	}
	id := h.createBackup("a", map[string]any{"volume_id": vol, "force": true})
	h.waitBackup("a", id, "available")
	h.waitVolume("a", vol, "in-use")
	h.json("admin", "POST", path("admin", "/volumes/"+vol+"/action"), map[string]any{"os-reset_status": map[string]any{"status": "extending"}}, 202)
	h.fail("a", "POST", path("a", "/backups"), map[string]any{"backup": map[string]any{"volume_id": vol, "force": true}}, 400)

	// A backup busy restoring can be neither restored nor deleted.
	h.json("admin", "POST", path("admin", "/backups/"+id+"/action"), map[string]any{"os-reset_status": map[string]any{"status": "error"}}, 202)
	h.fail("a", "POST", path("a", "/backups/"+id+"/restore"), map[string]any{"restore": map[string]any{}}, 400)
	if _, err := h.db.Exec(t.Context(), `UPDATE volume_backups SET status = 'restoring' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	h.fail("a", "DELETE", path("a", "/backups/"+id), nil, 400)
}

// TestIncrementalBackups: an incremental backup builds on the volume's
// latest available backup, in its container; a backup with dependents
// cannot be deleted until they are.
func TestIncrementalBackups(t *testing.T) {
	h := newHarness(t)
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	full := h.createBackup("a", map[string]any{"volume_id": vol, "container": "c1"})
	h.waitBackup("a", full, "available")
	h.waitVolume("a", vol, "available")
	h.fail("a", "POST", path("a", "/backups"), map[string]any{"backup": map[string]any{"volume_id": vol, "incremental": true, "container": "other"}}, 400)
	inc := h.createBackup("a", map[string]any{"volume_id": vol, "incremental": true})
	ib := h.waitBackup("a", inc, "available")
	if !ib.IsIncremental || *ib.Container != "c1" {
		t.Fatalf("incremental %+v", ib)
	}
	if fb := h.waitBackup("a", full, "available"); !fb.HasDependentBackups {
		t.Fatalf("parent %+v", fb)
	}
	var parentPrefix string
	for _, c := range h.agents["stor1"].Commands() {
		if c.Op == agentproto.OpBackup && c.Backup.ID == full {
			parentPrefix = c.Backup.Prefix
		}
	}
	for _, c := range h.agents["stor1"].Commands() {
		if c.Op == agentproto.OpBackup && c.Backup.ID == inc && (c.Backup.ParentPrefix == "" || c.Backup.ParentPrefix != parentPrefix) {
			t.Fatalf("incremental command's parent %q, want %q", c.Backup.ParentPrefix, parentPrefix)
		}
	}
	msg := h.fail("a", "DELETE", path("a", "/backups/"+full), nil, 400)
	if !strings.Contains(msg, "Incremental backups exist") {
		t.Fatalf("delete parent: %q", msg)
	}
	h.json("a", "DELETE", path("a", "/backups/"+inc), nil, 202)
	h.waitGone("a", path("a", "/backups/"+inc))
	h.json("a", "DELETE", path("a", "/backups/"+full), nil, 202)
	h.waitGone("a", path("a", "/backups/"+full))
}

// TestBackupQuotas: backups and backup_gigabytes are enforced with 413s
// and counted in quota usage and limits.
func TestBackupQuotas(t *testing.T) {
	h := newHarness(t)
	vol := h.createVolume("a", map[string]any{"size": 2}, "available")["id"].(string)
	h.json("admin", "PUT", path("admin", "/os-quota-sets/"+projA), map[string]any{"quota_set": map[string]any{"backups": 1, "backup_gigabytes": 3}}, 200)
	id := h.createBackup("a", map[string]any{"volume_id": vol})
	h.waitBackup("a", id, "available")
	h.waitVolume("a", vol, "available")
	msg := h.fail("a", "POST", path("a", "/backups"), map[string]any{"backup": map[string]any{"volume_id": vol}}, 413)
	if !strings.Contains(msg, "BackupLimitExceeded") {
		t.Fatalf("over backups: %q", msg)
	}
	h.json("admin", "PUT", path("admin", "/os-quota-sets/"+projA), map[string]any{"quota_set": map[string]any{"backups": 5}}, 200)
	msg = h.fail("a", "POST", path("a", "/backups"), map[string]any{"backup": map[string]any{"volume_id": vol}}, 413)
	if !strings.Contains(msg, "VolumeBackupSizeExceedsAvailableQuota") {
		t.Fatalf("over backup_gigabytes: %q", msg)
	}
	if v := h.waitVolume("a", vol, "available"); v["status"] != "available" {
		t.Fatalf("a refused backup changed the volume: %v", v)
	}
	qs := h.json("admin", "GET", path("admin", "/os-quota-sets/"+projA+"?usage=True"), nil, 200)["quota_set"].(map[string]any)
	if u := qs["backups"].(map[string]any); u["in_use"].(float64) != 1 {
		t.Fatalf("backups usage %v", u)
	}
	if u := qs["backup_gigabytes"].(map[string]any); u["in_use"].(float64) != 2 {
		t.Fatalf("backup_gigabytes usage %v", u)
	}
	abs := h.json("a", "GET", path("a", "/limits"), nil, 200)["limits"].(map[string]any)["absolute"].(map[string]any)
	if abs["totalBackupsUsed"].(float64) != 1 || abs["totalBackupGigabytesUsed"].(float64) != 2 {
		t.Fatalf("limits %v", abs)
	}
}

// TestBackupExportImport is test_volume_backup_export_import: the record
// decodes to JSON with the backup's id, an import under a new id is a
// second available backup on the same objects, a repeated id is refused,
// and the objects stay until the last of the two goes.
func TestBackupExportImport(t *testing.T) {
	h := newHarness(t)
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	id := h.createBackup("a", map[string]any{"volume_id": vol, "name": "exp"})
	h.waitBackup("a", id, "available")
	h.fail("a", "GET", path("a", "/backups/"+id+"/export_record"), nil, 403)
	var exp exportResp
	h.strict("admin", "GET", path("admin", "/backups/"+id+"/export_record"), nil, 200, &exp)
	if !strings.HasPrefix(exp.Record.Service, "cinder.backup.drivers") {
		t.Fatalf("backup_service %q", exp.Record.Service)
	}
	raw, err := base64.StdEncoding.DecodeString(exp.Record.URL)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil || rec["id"] != id {
		t.Fatalf("record %s: %v", raw, err)
	}
	importBody := func(rec map[string]any, service string) map[string]any {
		data, _ := json.Marshal(rec)
		return map[string]any{"backup-record": map[string]any{"backup_service": service, "backup_url": base64.StdEncoding.EncodeToString(data)}}
	}
	h.fail("admin", "POST", path("admin", "/backups/import_record"), importBody(rec, exp.Record.Service), 400)
	h.fail("admin", "POST", path("admin", "/backups/import_record"), importBody(rec, "cinder.backup.drivers.nfs"), 400)
	h.fail("admin", "POST", path("admin", "/backups/import_record"),
		map[string]any{"backup-record": map[string]any{"backup_service": exp.Record.Service, "backup_url": "!!"}}, 400)
	newID := "0a0a0a0a-0000-4000-8000-000000000001"
	rec["id"] = newID
	h.fail("a", "POST", path("a", "/backups/import_record"), importBody(rec, exp.Record.Service), 403)
	var imported backupCreateResp
	h.strict("admin", "POST", path("admin", "/backups/import_record"), importBody(rec, exp.Record.Service), 201, &imported)
	if imported.Backup.ID != newID || *imported.Backup.Name != "exp" {
		t.Fatalf("imported %+v", imported)
	}
	h.waitBackup("admin", newID, "available")
	var list backupListResp
	h.strict("admin", "GET", path("admin", "/backups"), nil, 200, &list)
	if len(list.Backups) != 1 || list.Backups[0].ID != newID {
		t.Fatalf("admin list %+v", list)
	}

	var rr restoreResp
	h.strict("a", "POST", path("a", "/backups/"+id+"/restore"), map[string]any{"restore": map[string]any{}}, 202, &rr)
	h.waitBackup("a", id, "available")
	h.waitVolume("a", rr.Restore.VolumeID, "available")

	loc := agentproto.Backup{Account: rec["account"].(string), Container: rec["container"].(string), Prefix: rec["service_metadata"].(string)}
	agent := h.agents["stor1"]
	h.json("admin", "DELETE", path("admin", "/backups/"+newID), nil, 202)
	h.waitGone("admin", path("admin", "/backups/"+newID))
	if !agent.HasBackup(loc) {
		t.Fatal("deleting the imported record removed the objects the original still uses")
	}
	h.json("a", "DELETE", path("a", "/backups/"+id), nil, 202)
	h.waitGone("a", path("a", "/backups/"+id))
	if agent.HasBackup(loc) {
		t.Fatal("the objects outlived the last record")
	}
}

// TestBackupAdminActions: os-reset_status and os-force_delete are
// admin's, and reset takes available or error only.
func TestBackupAdminActions(t *testing.T) {
	h := newHarness(t)
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	id := h.createBackup("a", map[string]any{"volume_id": vol})
	h.waitBackup("a", id, "available")
	act := path("a", "/backups/"+id+"/action")
	h.fail("a", "POST", act, map[string]any{"os-reset_status": map[string]any{"status": "error"}}, 403)
	h.fail("admin", "POST", act, map[string]any{"os-reset_status": map[string]any{"status": "creating"}}, 400)
	h.fail("admin", "POST", act, map[string]any{"os-bogus": map[string]any{}}, 400)
	h.json("admin", "POST", act, map[string]any{"os-reset_status": map[string]any{"status": "error"}}, 202)
	h.waitBackup("a", id, "error")
	if _, err := h.db.Exec(t.Context(), `UPDATE volume_backups SET status = 'creating' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	h.fail("a", "DELETE", path("a", "/backups/"+id), nil, 400)
	h.fail("a", "POST", act, map[string]any{"os-force_delete": map[string]any{}}, 403)
	h.json("admin", "POST", act, map[string]any{"os-force_delete": map[string]any{}}, 202)
	h.waitGone("a", path("a", "/backups/"+id))
}

// TestBackupFailures: a failed backup is error with the agent's fault
// and leaves the volume as it was; a failed restore leaves the backup
// available and the volume error_restoring; a backup of a snapshot
// marks the snapshot, not the volume.
func TestBackupFailures(t *testing.T) {
	h := newBareHarness(t, testDB(t))
	var failing sync.Map // op -> bool
	h.addHost(fakeagent.Config{Host: "stor1", Fail: func(cmd agentproto.Command) string {
		if on, _ := failing.Load(cmd.Op); on == true {
			return "object storage said no"
		}
		return ""
	}})
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	failing.Store(agentproto.OpBackup, true)
	bad := h.createBackup("a", map[string]any{"volume_id": vol})
	bb := h.waitBackup("a", bad, "error")
	if bb.FailReason == nil || *bb.FailReason != "object storage said no" {
		t.Fatalf("failed backup %+v", bb)
	}
	h.waitVolume("a", vol, "available")
	failing.Store(agentproto.OpBackup, false)

	snap := h.json("a", "POST", path("a", "/snapshots"), map[string]any{"snapshot": map[string]any{"volume_id": vol}}, 202)["snapshot"].(map[string]any)["id"].(string)
	h.eventually("snapshot available", func() bool {
		return h.json("a", "GET", path("a", "/snapshots/"+snap), nil, 200)["snapshot"].(map[string]any)["status"] == "available"
	})
	good := h.createBackup("a", map[string]any{"volume_id": vol, "snapshot_id": snap})
	gb := h.waitBackup("a", good, "available")
	if gb.SnapshotID == nil || *gb.SnapshotID != snap {
		t.Fatalf("snapshot backup %+v", gb)
	}
	h.eventually("snapshot available again", func() bool {
		return h.json("a", "GET", path("a", "/snapshots/"+snap), nil, 200)["snapshot"].(map[string]any)["status"] == "available"
	})
	for _, c := range h.agents["stor1"].Commands() {
		if c.Op == agentproto.OpBackup && c.Backup.ID == good && c.SnapshotID != snap {
			t.Fatalf("snapshot backup command %+v", c)
		}
	}

	failing.Store(agentproto.OpRestore, true)
	var rr restoreResp
	h.strict("a", "POST", path("a", "/backups/"+good+"/restore"), map[string]any{"restore": map[string]any{"name": "r"}}, 202, &rr)
	if rr.Restore.VolumeName != "r" {
		t.Fatalf("restore %+v", rr)
	}
	h.waitVolume("a", rr.Restore.VolumeID, "error_restoring")
	h.waitBackup("a", good, "available")
	// error_restoring volumes can be deleted.
	h.json("a", "DELETE", path("a", "/volumes/"+rr.Restore.VolumeID), nil, 202)
	h.waitGone("a", path("a", "/volumes/"+rr.Restore.VolumeID))

	failing.Store(agentproto.OpDeleteBackup, true)
	h.json("a", "DELETE", path("a", "/backups/"+good), nil, 202)
	h.waitBackup("a", good, "error_deleting")
}

// TestBackupListPagination: limit, marker and the next link.
func TestBackupListPagination(t *testing.T) {
	h := newHarness(t)
	vol := h.createVolume("a", map[string]any{"size": 1}, "available")["id"].(string)
	var ids []string
	for i := 0; i < 3; i++ {
		id := h.createBackup("a", map[string]any{"volume_id": vol})
		h.waitBackup("a", id, "available")
		h.waitVolume("a", vol, "available")
		ids = append(ids, id)
	}
	var list backupListResp
	h.strict("a", "GET", path("a", "/backups?limit=2&sort=created_at:asc"), nil, 200, &list)
	if len(list.Backups) != 2 || list.Backups[0].ID != ids[0] || len(list.BackupsLinks) != 1 {
		t.Fatalf("first page %+v", list)
	}
	next, _ := url.Parse(list.BackupsLinks[0].Href)
	h.strict("a", "GET", next.RequestURI(), nil, 200, &list)
	if len(list.Backups) != 1 || list.Backups[0].ID != ids[2] {
		t.Fatalf("second page %+v", list)
	}
	var detail backupDetailListResp
	h.strict("a", "GET", path("a", "/backups/detail?volume_id="+vol+"&status=available"), nil, 200, &detail)
	if len(detail.Backups) != 3 {
		t.Fatalf("filtered detail %+v", detail)
	}
	h.fail("a", "GET", path("a", "/backups?marker=00000000-0000-4000-8000-000000000000"), nil, 404)
}
