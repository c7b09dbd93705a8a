package qemu

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestQEMUArgsGolden pins the command line, one argument per line, so a
// change to it is a reviewed diff (go test -run Golden -update).
func TestQEMUArgsGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    launch
	}{
		{"tcg-full", launch{
			UUID: "6e1f1d36-1c43-4b5f-9d51-9b7a8b1c0d2e", Name: "instance-0000000a", VCPUs: 2, MemoryMiB: 512,
			VirtType: VirtQEMU,
			Disks: []diskFile{
				{Name: "root", Path: "/var/lib/nimbus/instances/6e1f/disk.root.qcow2", Format: "qcow2", Owned: true},
				{Name: "vol1", Path: "/dev/vg/volume-1,odd", Format: "raw"},
			},
			ConfigISO: "/var/lib/nimbus/instances/6e1f/config.iso",
			NICs:      []hypervisor.NIC{{TapName: "tap0a1b2c3d-4e", MAC: "FA:16:3E:00:00:01"}, {TapName: "tap2", MAC: "fa:16:3e:00:00:02"}},
			PIDFile:   "/run/nimbus/qemu/6e1f.pid", QMPSocket: "/run/nimbus/qemu/6e1f.qmp", StatusSocket: "/run/nimbus/qemu/6e1f.status.qmp",
			ConsoleLog: "/var/lib/nimbus/instances/6e1f/console.log", QEMULog: "/var/lib/nimbus/instances/6e1f/qemu.log", VNCDisplay: 3,
			SerialPort: 10003,
		}},
		{"kvm-resume", launch{
			UUID: "6e1f1d36-1c43-4b5f-9d51-9b7a8b1c0d2e", Name: "vm", VCPUs: 1, MemoryMiB: 64, VirtType: VirtKVM,
			Disks:   []diskFile{{Name: "root", Path: "/d.qcow2", Format: "qcow2"}},
			PIDFile: "/p", QMPSocket: "/q", StatusSocket: "/s", ConsoleLog: "/c,log", QEMULog: "/l", Incoming: "/state/it's.state",
			SerialPort: 10000,
		}},
		{"tcg-direct-boot", launch{
			UUID: "6e1f1d36-1c43-4b5f-9d51-9b7a8b1c0d2e", Name: "vm", VCPUs: 1, MemoryMiB: 128, VirtType: VirtQEMU,
			Disks:   []diskFile{{Name: "root", Path: "/d.qcow2", Format: "qcow2"}},
			PIDFile: "/p", QMPSocket: "/q", StatusSocket: "/s", ConsoleLog: "/c", QEMULog: "/l", SerialPort: 10001, VNCDisplay: 1,
			Kernel: "/base/sha256-k,1", Initrd: "/base/sha256-r", Cmdline: "root=/dev/vda1 console=ttyS0,115200n8 rw",
		}},
		{"tcg-boot-from-volume", launch{
			UUID: "6e1f1d36-1c43-4b5f-9d51-9b7a8b1c0d2e", Name: "vm", VCPUs: 1, MemoryMiB: 128, VirtType: VirtQEMU,
			Disks: []diskFile{
				{Name: "vda", Volume: &hypervisor.VolumeConn{VolumeID: "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d", Host: "10.0.0.7", Port: 10809,
					Export: "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d-a1b2c3d4", PSKIdentity: "compute-1", PSKKey: testPSKKey, Discard: true}},
				{Name: "ephemeral0", Path: "/i/disk.ephemeral0.qcow2", Format: "qcow2", Owned: true, Bus: "scsi"},
				{Name: "vdb", ReadOnly: true, Bus: "scsi", Volume: &hypervisor.VolumeConn{VolumeID: "f00dcafe-0000-4000-8000-000000000001", Host: "fd00::7", Port: 10810,
					Export: "weird,export name", PSKIdentity: "compute-1", PSKKey: testPSKKey, ReadOnly: true}},
			},
			ConfigISO: "/i/config.iso",
			PIDFile:   "/p", QMPSocket: "/q", StatusSocket: "/s", ConsoleLog: "/c", QEMULog: "/l", SerialPort: 10001, VNCDisplay: 1,
			Kernel: "/base/sha256-k", Initrd: "/base/sha256-r", Cmdline: "root=/dev/vda1 console=ttyS0",
			PSKDir: "/run/nimbus/qemu/6e1f1d36-1c43-4b5f-9d51-9b7a8b1c0d2e",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(qemuArgs(tc.l), "\n") + "\n"
			path := filepath.Join("testdata", "args-"+tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("command line differs from %s:\ngot:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

// testPSKKey is a made-up TLS pre-shared key for tests.
const testPSKKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// TestVolumeKeyNotOnCommandLine: the command line is visible to every
// user of the host (/proc/<pid>/cmdline), so a volume's key must only be
// in its key file, which QEMU is pointed at.
func TestVolumeKeyNotOnCommandLine(t *testing.T) {
	conn := &hypervisor.VolumeConn{VolumeID: "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d", Host: "127.0.0.1", Port: 10809,
		Export: "e", PSKIdentity: "compute-1", PSKKey: testPSKKey}
	args := qemuArgs(launch{UUID: "6e1f1d36-1c43-4b5f-9d51-9b7a8b1c0d2e", Name: "vm", VCPUs: 1, MemoryMiB: 64,
		Disks: []diskFile{{Name: "vda", Volume: conn}}, PSKDir: "/run/g"})
	all := strings.Join(args, " ")
	if strings.Contains(strings.ToLower(all), testPSKKey) {
		t.Fatalf("the key is on the command line: %s", all)
	}
	if !strings.Contains(all, "dir=/run/g/psk-0b1c2d3e,username=compute-1") {
		t.Fatalf("the credentials do not point at the key file: %s", all)
	}
}
