package volumeagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/volume/agentproto"
)

// manifestVersion is the format of the metadata objects this agent
// writes; a restore refuses others.
const manifestVersion = 1

// maxManifest bounds the metadata object a restore reads (a 16 TiB
// volume in 32 MiB chunks lists about 500,000 chunks).
const maxManifest = 256 << 20

// manifest is a backup's metadata object: the volume's size and every
// chunk that holds data, with the object that has its bytes (this
// backup's, or for an incremental backup possibly an ancestor's) and its
// sha256. A range no chunk covers is zeros.
type manifest struct {
	Version   int     `json:"version"`
	BackupID  string  `json:"backup_id"`
	VolumeID  string  `json:"volume_id"`
	SizeBytes int64   `json:"size_bytes"`
	ChunkSize int64   `json:"chunk_size"`
	Parent    string  `json:"parent_prefix,omitempty"`
	CreatedAt string  `json:"created_at"`
	Chunks    []chunk `json:"chunks"`
}

type chunk struct {
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
	Object string `json:"object"`
}

func validBackup(b *agentproto.Backup) error {
	if b == nil || !validID(b.ID) || b.Account == "" || b.Container == "" || b.Prefix == "" {
		return faultf("the command does not say which backup, or where its objects are")
	}
	return nil
}

// tempPath is a scratch file in the state directory under a name that
// removeParts deletes after a crash.
func (a *Agent) tempPath(name string) string {
	return filepath.Join(a.cfg.StateDir, "."+name+".part")
}

// backup reads the volume (or its snapshot) as raw bytes, chunk by
// chunk, and stores the chunks that hold data and differ from the
// parent's, then the manifest. Stored last, the manifest is what makes a
// backup restorable, so a redelivered command simply starts again.
func (a *Agent) backup(ctx context.Context, cmd agentproto.Command, rep *agentproto.Report) error {
	b := cmd.Backup
	rep.Status = returnStatus(cmd)
	sw, err := a.swiftFor(b)
	if err != nil {
		return err
	}
	src := a.volumePath(cmd.VolumeID)
	if cmd.SnapshotID != "" {
		src = a.snapshotPath(cmd.SnapshotID)
	}
	if !exists(src) {
		return faultf("%s is not on this host", filepath.Base(src))
	}
	raw := a.tempPath("backup-" + b.ID + ".raw")
	defer removeFile(raw)
	if err := a.readRaw(ctx, cmd, src, raw); err != nil {
		return fmt.Errorf("backup: read the volume: %w", err)
	}
	var parent *manifest
	if b.ParentPrefix != "" {
		if parent, err = readManifest(ctx, sw, b.ParentPrefix+"/metadata"); err != nil {
			return fmt.Errorf("backup: parent backup: %w", err)
		}
	}
	m, stored, err := a.storeChunks(ctx, sw, b, raw, parent)
	if err != nil {
		return err
	}
	m.BackupID, m.VolumeID, m.Parent = b.ID, cmd.VolumeID, b.ParentPrefix
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := sw.put(ctx, b.MetadataObject(), data, "application/json"); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	rep.BackupStatus, rep.ObjectCount, rep.SizeGB = agentproto.StatusAvailable, stored+1, sizeGB(m.SizeBytes)
	return nil
}

// readRaw writes the source's bytes into a sparse raw file: from a
// consistent copy made by the storage daemon while a compute host has
// the volume open, else straight from the file.
func (a *Agent) readRaw(ctx context.Context, cmd agentproto.Command, src, raw string) error {
	if cmd.SnapshotID == "" {
		busy, err := a.exported(ctx, cmd.VolumeID)
		if err != nil {
			return err
		}
		if busy {
			copyPath := a.tempPath("backup-" + cmd.Backup.ID + ".qcow2")
			defer removeFile(copyPath)
			if err := removeFile(copyPath); err != nil {
				return err
			}
			if err := a.copyVolume(ctx, cmd.VolumeID, copyPath); err != nil {
				return err
			}
			src = copyPath
		}
	}
	if err := removeFile(raw); err != nil {
		return err
	}
	return convert(ctx, src, "qcow2", raw, "raw")
}

// storeChunks cuts the raw file into chunks and stores those with data,
// reusing the parent's object for a chunk whose bytes it already has.
// It returns the manifest (without its identity fields) and how many
// objects it stored.
func (a *Agent) storeChunks(ctx context.Context, sw *swift, b *agentproto.Backup, raw string, parent *manifest) (*manifest, int, error) {
	f, err := os.Open(raw)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := b.ChunkSize
	if parent != nil {
		size = parent.ChunkSize // so chunks line up with the parent's
	}
	if size <= 0 {
		size = agentproto.DefaultChunkSize
	}
	m := &manifest{Version: manifestVersion, SizeBytes: st.Size(), ChunkSize: size, CreatedAt: time.Now().UTC().Format(time.RFC3339)}
	inParent := map[int64]chunk{}
	if parent != nil {
		for _, c := range parent.Chunks {
			inParent[c.Offset] = c
		}
	}
	if err := sw.ensureContainer(ctx); err != nil {
		return nil, 0, err
	}
	buf := make([]byte, size)
	stored := 0
	for off := int64(0); off < m.SizeBytes; off += size {
		n := min(size, m.SizeBytes-off)
		if !hasData(f, off, n) {
			continue
		}
		data := buf[:n]
		if _, err := f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("read chunk at %d: %w", off, err)
		}
		if allZero(data) {
			continue
		}
		sum := sha256.Sum256(data)
		c := chunk{Offset: off, Length: n, SHA256: hex.EncodeToString(sum[:])}
		if p, ok := inParent[off]; ok && p.Length == c.Length && p.SHA256 == c.SHA256 {
			c.Object = p.Object
		} else {
			c.Object = fmt.Sprintf("%s/chunk-%08d", b.Prefix, off/size)
			if err := sw.put(ctx, c.Object, data, "application/octet-stream"); err != nil {
				return nil, 0, fmt.Errorf("backup: %w", err)
			}
			stored++
		}
		m.Chunks = append(m.Chunks, c)
	}
	return m, stored, nil
}

// seekData is lseek's SEEK_DATA: the next offset at or after off that
// holds data.
const seekData = 3

// hasData reports whether the file has data (not a hole) in [off,
// off+n); when the file system cannot tell, it says yes and the bytes
// are read and checked.
func hasData(f *os.File, off, n int64) bool {
	next, err := f.Seek(off, seekData)
	if errors.Is(err, syscall.ENXIO) {
		return false // only a hole follows
	}
	if err != nil {
		return true
	}
	return next < off+n
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func readManifest(ctx context.Context, sw *swift, object string) (*manifest, error) {
	data, err := sw.get(ctx, object, maxManifest)
	if errors.Is(err, errObjectNotFound) {
		return nil, faultf("the backup's metadata object %s is not in container %s", object, sw.container)
	}
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, faultf("the backup's metadata object %s is unreadable: %v", object, err)
	}
	if m.Version != manifestVersion || m.ChunkSize <= 0 || m.SizeBytes < 0 {
		return nil, faultf("the backup's metadata object %s has version %d, chunk size %d: not a backup this agent can read", object, m.Version, m.ChunkSize)
	}
	return &m, nil
}

// restore writes a backup into the volume's file: every chunk is read
// and checked against its sha256 into a sparse raw file, which becomes
// the new qcow2 file, grown to the volume's size, under the volume's name
// only when whole. A volume a compute host has open is refused: its
// guest would not see the change.
func (a *Agent) restore(ctx context.Context, cmd agentproto.Command, rep *agentproto.Report) error {
	b := cmd.Backup
	sw, err := a.swiftFor(b)
	if err != nil {
		return err
	}
	if cmd.SizeGB < 1 {
		return faultf("invalid size %d GiB", cmd.SizeGB)
	}
	busy, err := a.exported(ctx, cmd.VolumeID)
	if err != nil {
		return err
	}
	if busy {
		return faultf("volume %s is attached: it cannot be restored into", cmd.VolumeID)
	}
	m, err := readManifest(ctx, sw, b.MetadataObject())
	if err != nil {
		return err
	}
	size := int64(cmd.SizeGB) * gib
	if m.SizeBytes > size {
		return faultf("the backup holds %d bytes, more than the volume's %d GiB", m.SizeBytes, cmd.SizeGB)
	}
	raw := a.tempPath("restore-" + cmd.VolumeID + ".raw")
	defer removeFile(raw)
	if err := fetchChunks(ctx, sw, m, raw); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	final := a.volumePath(cmd.VolumeID)
	part := partPath(final)
	if err := removeFile(part); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer removeFile(part)
	if err := convert(ctx, raw, "raw", part, "qcow2"); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := growTo(ctx, part, size); err != nil {
		return err
	}
	if err := publish(part, final); err != nil {
		return err
	}
	return a.reportSize(final, rep, agentproto.StatusAvailable)
}

// fetchChunks writes the manifest's chunks into a new sparse raw file of
// the backed-up size, verifying each.
func fetchChunks(ctx context.Context, sw *swift, m *manifest, raw string) error {
	f, err := os.OpenFile(raw, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(m.SizeBytes); err != nil {
		return err
	}
	for _, c := range m.Chunks {
		if c.Offset < 0 || c.Length <= 0 || c.Length > m.ChunkSize || c.Offset+c.Length > m.SizeBytes {
			return faultf("the backup's metadata lists a chunk at %d of %d bytes outside the volume", c.Offset, c.Length)
		}
		data, err := sw.get(ctx, c.Object, c.Length)
		if errors.Is(err, errObjectNotFound) {
			return faultf("the backup's object %s is missing", c.Object)
		}
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		if int64(len(data)) != c.Length || hex.EncodeToString(sum[:]) != c.SHA256 {
			return faultf("the backup's object %s is corrupt: %d bytes with sha256 %x, want %d bytes with %s", c.Object, len(data), sum, c.Length, c.SHA256)
		}
		if _, err := f.WriteAt(data, c.Offset); err != nil {
			return err
		}
	}
	return f.Sync()
}

// deleteBackup removes every object under the backup's prefix (its
// chunks and manifest; an incremental backup's parents keep theirs).
func (a *Agent) deleteBackup(ctx context.Context, cmd agentproto.Command, rep *agentproto.Report) error {
	b := cmd.Backup
	sw, err := a.swiftFor(b)
	if err != nil {
		return err
	}
	names, err := sw.list(ctx, b.Prefix+"/")
	if err != nil {
		return fmt.Errorf("delete backup: %w", err)
	}
	// The manifest goes last: until then the backup is still whole
	// enough to be deleted again.
	meta := b.MetadataObject()
	for _, n := range names {
		if n == meta {
			continue
		}
		if err := sw.delete(ctx, n); err != nil {
			return fmt.Errorf("delete backup: %w", err)
		}
	}
	if err := sw.delete(ctx, meta); err != nil {
		return fmt.Errorf("delete backup: %w", err)
	}
	rep.BackupStatus = agentproto.StatusDeleted
	return nil
}
