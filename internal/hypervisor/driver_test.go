package hypervisor

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func validSpec() Spec {
	return Spec{
		UUID: "6e1f1d36-1c43-4b5f-9d51-9b7a8b1c0d2e", VCPUs: 1, MemoryMiB: 64,
		Disks: []Disk{{Name: "root", Image: &Image{ID: "i", Path: "/i", Checksum: "ab"}}},
		NICs:  []NIC{{TapName: "tap6e1f1d36-1c", MAC: "fa:16:3e:00:00:01"}},
	}
}

// TestSpecValidate: anything that becomes a file name or a QEMU option is
// checked before a driver acts on it.
func TestSpecValidate(t *testing.T) {
	if err := (&Spec{}).Validate(); err == nil {
		t.Fatal("empty spec accepted")
	}
	s := validSpec()
	if err := s.Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	for name, mutate := range map[string]func(*Spec){
		"uuid with a path":   func(s *Spec) { s.UUID = "../../../../etc/passwd-aaaaaaaaaaaaaaa" },
		"zero vcpus":         func(s *Spec) { s.VCPUs = 0 },
		"tiny memory":        func(s *Spec) { s.MemoryMiB = 1 },
		"no disks":           func(s *Spec) { s.Disks = nil },
		"disk name comma":    func(s *Spec) { s.Disks[0].Name = "root,file=/etc/shadow" },
		"duplicate disk":     func(s *Spec) { s.Disks = append(s.Disks, s.Disks[0]) },
		"image and path":     func(s *Spec) { s.Disks[0].Path = "/dev/sda" },
		"blank without size": func(s *Spec) { s.Disks[0].Image = nil },
		"image w/o checksum": func(s *Spec) { s.Disks[0].Image.Checksum = "" },
		"long tap":           func(s *Spec) { s.NICs[0].TapName = strings.Repeat("t", 16) },
		"tap with comma":     func(s *Spec) { s.NICs[0].TapName = "t,script=/x" },
		"bad mac":            func(s *Spec) { s.NICs[0].MAC = "fa:16:3e:00:00" },
	} {
		s := validSpec()
		mutate(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestStateErrorIs(t *testing.T) {
	err := fmt.Errorf("pause x: %w", &StateError{Op: "pause", State: Shutdown})
	if !errors.Is(err, ErrInvalidState) {
		t.Fatal("StateError does not match ErrInvalidState")
	}
	if !strings.Contains(err.Error(), "shutdown") {
		t.Fatalf("message %q", err)
	}
	if Suspended.String() != "suspended" || PowerState(42).String() != "power-state-42" {
		t.Fatal("PowerState names")
	}
}
