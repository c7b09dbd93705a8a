package ring

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Format names and versions stored in the files, so a loader refuses a file
// of the other kind or from a future Nimbus instead of misreading it.
const (
	ringFormat     = "nimbus-ring"
	builderFormat  = "nimbus-ring-builder"
	formatVersion  = 1
	maxDecodedSize = 1 << 30 // 1 GiB: far above a part power 24 ring; stops gzip bombs
)

// ErrCorrupt wraps every validation failure of a ring or builder file, so
// callers can tell a bad file from an I/O error with errors.Is.
var ErrCorrupt = errors.New("corrupt ring file")

type ringFile struct {
	Format       string     `json:"format"`
	Version      int        `json:"version"`
	BuildVersion int        `json:"build_version"`
	PartPower    int        `json:"part_power"`
	PartShift    int        `json:"part_shift"`
	Replicas     int        `json:"replicas"`
	Devices      []Device   `json:"devices"`
	Assign       [][]uint16 `json:"replica2part2dev"`
}

type builderFile struct {
	Format        string          `json:"format"`
	Version       int             `json:"version"`
	BuildVersion  int             `json:"build_version"`
	PartPower     int             `json:"part_power"`
	Replicas      int             `json:"replicas"`
	MinPartHours  int             `json:"min_part_hours"`
	NextDeviceID  int             `json:"next_device_id"`
	LastRebalance time.Time       `json:"last_rebalance"`
	Devices       []BuilderDevice `json:"devices"`
	Assign        [][]int32       `json:"replica2part2dev,omitempty"`
	LastMoved     [][]int64       `json:"last_moved,omitempty"`
}

// WriteRing writes the ring file servers and proxies load.
func (b *Builder) WriteRing(path string) error {
	t, err := b.table()
	if err != nil {
		return fmt.Errorf("write ring %s: %w", path, err)
	}
	f := ringFile{
		Format: ringFormat, Version: formatVersion, BuildVersion: t.buildVersion,
		PartPower: t.partPower, PartShift: int(t.partShift), Replicas: t.replicas,
		Devices: t.devs, Assign: t.assign,
	}
	if err := writeGzipJSON(path, f); err != nil {
		return fmt.Errorf("write ring: %w", err)
	}
	return nil
}

// Save writes the builder file. Losing it means the next ring is built from
// scratch and nearly all data moves, so it is written atomically.
func (b *Builder) Save(path string) error {
	if err := writeGzipJSON(path, b.file()); err != nil {
		return fmt.Errorf("save builder: %w", err)
	}
	return nil
}

// Encode writes the builder file format to w, for callers that keep
// builders somewhere other than a local file.
func (b *Builder) Encode(w io.Writer) error { return encodeGzipJSON(w, b.file()) }

func (b *Builder) file() builderFile {
	f := builderFile{
		Format: builderFormat, Version: formatVersion, BuildVersion: b.buildVersion,
		PartPower: b.partPower, Replicas: b.replicas, MinPartHours: b.minPartHours,
		NextDeviceID: b.nextID, LastRebalance: b.lastRebal, Devices: b.devs,
		Assign: b.assign, LastMoved: b.lastMoved,
	}
	if f.Devices == nil {
		f.Devices = []BuilderDevice{}
	}
	return f
}

// LoadBuilder reads and validates a builder file.
func LoadBuilder(path string) (*Builder, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load builder: %w", err)
	}
	defer f.Close()
	b, err := DecodeBuilder(f)
	if err != nil {
		return nil, fmt.Errorf("load builder %s: %w", path, err)
	}
	return b, nil
}

// writeGzipJSON writes v as gzip'd JSON to path via a temporary file in the
// same directory, fsynced and renamed over the target, then fsyncs the
// directory: a crash leaves either the old file or the new one, never a
// torn one, and a reader polling mtime never loads a partial ring.
func writeGzipJSON(path string, v any) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := encodeGzipJSON(tmp, v); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

func encodeGzipJSON(w io.Writer, v any) error {
	zw := gzip.NewWriter(w)
	if err := json.NewEncoder(zw).Encode(v); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	return nil
}

// gunzip reads a whole gzip stream, refusing anything that inflates past
// maxDecodedSize.
func gunzip(r io.Reader) ([]byte, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: not gzip: %v", ErrCorrupt, err)
	}
	defer zr.Close()
	raw, err := io.ReadAll(io.LimitReader(zr, maxDecodedSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: decompress: %v", ErrCorrupt, err)
	}
	if len(raw) > maxDecodedSize {
		return nil, fmt.Errorf("%w: larger than %d bytes uncompressed", ErrCorrupt, maxDecodedSize)
	}
	return raw, nil
}

// decodeJSON decodes strictly: unknown fields and trailing data are errors,
// because a ring that half-parses is worse than none.
func decodeJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: decode json: %v", ErrCorrupt, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after json", ErrCorrupt)
	}
	return nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// checkHeader validates the fields common to both files.
func checkHeader(format, want string, version, partPower, replicas int) error {
	if format != want {
		return corrupt("format %q, want %q", format, want)
	}
	if version != formatVersion {
		return corrupt("format version %d not supported (want %d)", version, formatVersion)
	}
	if partPower < 0 || partPower > MaxPartPower {
		return corrupt("part_power %d out of range 0..%d", partPower, MaxPartPower)
	}
	if replicas < 1 || replicas > MaxReplicas {
		return corrupt("replicas %d out of range 1..%d", replicas, MaxReplicas)
	}
	return nil
}

// checkDevices validates devices and returns the set of ids.
func checkDevices(devs []Device) (map[int]bool, error) {
	ids := make(map[int]bool, len(devs))
	type addr struct {
		host, name string
	}
	seen := map[addr]int{}
	for _, d := range devs {
		if err := d.validate(); err != nil {
			return nil, corrupt("%v", err)
		}
		if ids[d.ID] {
			return nil, corrupt("device id %d appears twice", d.ID)
		}
		ids[d.ID] = true
		a := addr{d.Host(), d.Name}
		if other, dup := seen[a]; dup {
			return nil, corrupt("devices %d and %d are both %s/%s", other, d.ID, a.host, a.name)
		}
		seen[a] = d.ID
	}
	return ids, nil
}

// decodeRing reads a ring from r and validates it: every partition replica
// must name a device in the file, so lookups never fail at request time.
func decodeRing(r io.Reader) (*table, error) {
	raw, err := gunzip(r)
	if err != nil {
		return nil, err
	}
	return decodeRingJSON(raw)
}

func decodeRingJSON(raw []byte) (*table, error) {
	var f ringFile
	if err := decodeJSON(raw, &f); err != nil {
		return nil, err
	}
	if err := checkHeader(f.Format, ringFormat, f.Version, f.PartPower, f.Replicas); err != nil {
		return nil, err
	}
	if f.PartShift != 32-f.PartPower {
		return nil, corrupt("part_shift %d does not match part_power %d", f.PartShift, f.PartPower)
	}
	if f.BuildVersion < 0 {
		return nil, corrupt("negative build_version")
	}
	ids, err := checkDevices(f.Devices)
	if err != nil {
		return nil, err
	}
	if len(f.Assign) != f.Replicas {
		return nil, corrupt("%d replica rows, want %d", len(f.Assign), f.Replicas)
	}
	parts := 1 << f.PartPower
	for r, row := range f.Assign {
		if len(row) != parts {
			return nil, corrupt("replica %d has %d partitions, want %d", r, len(row), parts)
		}
		for p, id := range row {
			if !ids[int(id)] {
				return nil, corrupt("replica %d partition %d names unknown device %d", r, p, id)
			}
		}
	}
	return newTable(f.BuildVersion, f.PartPower, f.Replicas, f.Devices, f.Assign), nil
}

// DecodeBuilder reads a builder from r and validates it, so a damaged file
// fails here rather than in the middle of a rebalance.
func DecodeBuilder(r io.Reader) (*Builder, error) {
	raw, err := gunzip(r)
	if err != nil {
		return nil, err
	}
	return decodeBuilderJSON(raw)
}

func decodeBuilderJSON(raw []byte) (*Builder, error) {
	var f builderFile
	if err := decodeJSON(raw, &f); err != nil {
		return nil, err
	}
	if err := checkHeader(f.Format, builderFormat, f.Version, f.PartPower, f.Replicas); err != nil {
		return nil, err
	}
	if f.MinPartHours < 0 || f.MinPartHours > maxMinPartHours {
		return nil, corrupt("min_part_hours %d out of range", f.MinPartHours)
	}
	if f.BuildVersion < 0 {
		return nil, corrupt("negative build_version")
	}
	if f.NextDeviceID < 0 || f.NextDeviceID > maxDeviceID+1 {
		return nil, corrupt("next_device_id %d out of range", f.NextDeviceID)
	}
	if f.Devices == nil {
		f.Devices = []BuilderDevice{} // what Save writes for "no devices"
	}
	devs := make([]Device, len(f.Devices))
	live := make([]Device, 0, len(f.Devices))
	for i, d := range f.Devices {
		devs[i] = d.Device
		if i > 0 && f.Devices[i-1].ID >= d.ID {
			return nil, corrupt("devices not in ascending id order at id %d", d.ID)
		}
		if d.ID >= f.NextDeviceID {
			return nil, corrupt("device id %d not below next_device_id %d", d.ID, f.NextDeviceID)
		}
		if !d.Removed {
			live = append(live, d.Device)
		}
	}
	// Removed devices may share an address with their replacement.
	if _, err := checkDevices(live); err != nil {
		return nil, err
	}
	ids := map[int32]bool{}
	for _, d := range devs {
		if err := d.validate(); err != nil {
			return nil, corrupt("%v", err)
		}
		ids[int32(d.ID)] = true
	}
	parts := 1 << f.PartPower
	if (f.Assign == nil) != (f.LastMoved == nil) {
		return nil, corrupt("replica2part2dev and last_moved must be both present or both absent")
	}
	if f.Assign != nil {
		if len(f.Assign) != f.Replicas || len(f.LastMoved) != f.Replicas {
			return nil, corrupt("%d replica rows and %d last_moved rows, want %d", len(f.Assign), len(f.LastMoved), f.Replicas)
		}
		for r := range f.Assign {
			if len(f.Assign[r]) != parts || len(f.LastMoved[r]) != parts {
				return nil, corrupt("replica %d rows have %d and %d partitions, want %d", r, len(f.Assign[r]), len(f.LastMoved[r]), parts)
			}
			for p, id := range f.Assign[r] {
				if id != -1 && !ids[id] {
					return nil, corrupt("replica %d partition %d names unknown device %d", r, p, id)
				}
				if f.LastMoved[r][p] < 0 {
					return nil, corrupt("replica %d partition %d has negative last_moved", r, p)
				}
			}
		}
	}
	return &Builder{
		partPower: f.PartPower, replicas: f.Replicas, minPartHours: f.MinPartHours,
		buildVersion: f.BuildVersion, nextID: f.NextDeviceID, lastRebal: f.LastRebalance,
		devs: f.Devices, assign: f.Assign, lastMoved: f.LastMoved, now: time.Now,
	}, nil
}

// DecodeRing reads a ring from r (a ring file's bytes) and validates it,
// for callers that get rings from somewhere other than a file path. The
// returned ring has no path, so Reload is a no-op.
func DecodeRing(r io.Reader, hash HashPath) (*Ring, error) {
	t, err := decodeRing(r)
	if err != nil {
		return nil, err
	}
	rg := &Ring{hash: hash}
	rg.cur.Store(t)
	return rg, nil
}
