package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nimbus-cloud/nimbus/internal/image/diskformat"
)

// qemuFormats maps the disk formats qemu-img can convert to its names
// for them.
var qemuFormats = map[string]string{
	"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc", "vhdx": "vhdx", "vdi": "vdi",
}

// convertStaged converts staged data to the operator's ConvertTo format
// (Glance's image_conversion import plugin), so that, say, every image
// ends up raw for a backend that clones raw images cheaply. Imports of
// other formats, and copies of existing images, are left alone.
func (s *Service) convertStaged(ctx context.Context, job *importJob) error {
	to := s.cfg.ConvertTo
	if to == "" || job.method == methodCopyImage || job.diskFmt == to {
		return nil
	}
	from, ok := qemuFormats[job.diskFmt]
	if !ok {
		return nil
	}
	src := s.stagedPath(job.imageID)
	// The ".tmp-" prefix makes the staging store clean up what a crash
	// during conversion leaves behind.
	dst := filepath.Join(filepath.Dir(src), ".tmp-convert-"+job.imageID)
	if err := diskformat.Convert(ctx, src, dst, from, qemuFormats[to]); err != nil {
		return fmt.Errorf("convert %s to %s: %w", job.diskFmt, to, err)
	}
	if err := syncFile(dst); err != nil {
		os.Remove(dst)
		return fmt.Errorf("convert %s to %s: %w", job.diskFmt, to, err)
	}
	if err := os.Rename(dst, src); err != nil {
		os.Remove(dst)
		return fmt.Errorf("convert %s to %s: %w", job.diskFmt, to, err)
	}
	job.convTo = to
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
