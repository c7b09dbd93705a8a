package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// storageDaemon is a qemu-storage-daemon serving qcow2 files over NBD
// with TLS-PSK on loopback, as a storage host's volume agent runs it.
type storageDaemon struct {
	port int
	dir  string
}

// qsdVolume is one export of the test storage daemon.
type qsdVolume struct {
	id, export, file string
	identity, key    string
}

// startStorageDaemon serves vols (each file already made) and stops the
// daemon when the test ends.
func startStorageDaemon(t *testing.T, dir string, vols []qsdVolume) *storageDaemon {
	t.Helper()
	if _, err := exec.LookPath("qemu-storage-daemon"); err != nil {
		t.Fatalf("qemu-storage-daemon is needed (package qemu-system-common): %v", err)
	}
	keys := filepath.Join(dir, "server-keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	var lines strings.Builder
	seen := map[string]bool{}
	for _, v := range vols {
		if !seen[v.identity] {
			fmt.Fprintf(&lines, "%s:%s\n", v.identity, v.key)
			seen[v.identity] = true
		}
	}
	if err := os.WriteFile(filepath.Join(keys, "keys.psk"), []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	args := []string{"--object", "tls-creds-psk,id=tls0,endpoint=server,dir=" + keys}
	for i, v := range vols {
		args = append(args,
			"--blockdev", fmt.Sprintf("driver=file,node-name=f%d,filename=%s", i, v.file),
			"--blockdev", fmt.Sprintf("driver=qcow2,node-name=v%d,file=f%d", i, i))
	}
	args = append(args, "--nbd-server", fmt.Sprintf("addr.type=inet,addr.host=127.0.0.1,addr.port=%d,tls-creds=tls0", port))
	for i, v := range vols {
		args = append(args, "--export", fmt.Sprintf("type=nbd,id=e%d,node-name=v%d,name=%s,writable=on", i, i, v.export))
	}
	cmd := exec.Command("qemu-storage-daemon", args...)
	logf, err := os.Create(filepath.Join(dir, "qsd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu-storage-daemon: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "qsd.log"))
			t.Fatalf("qemu-storage-daemon exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("qemu-storage-daemon does not listen on %d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &storageDaemon{port: port, dir: dir}
}

// conn is how a guest reaches v on this daemon.
func (s *storageDaemon) conn(v qsdVolume) *hypervisor.VolumeConn {
	return &hypervisor.VolumeConn{VolumeID: v.id, Host: "127.0.0.1", Port: s.port, Export: v.export,
		PSKIdentity: v.identity, PSKKey: v.key, Discard: true}
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

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v: %s", args, err, out)
	}
}

// volumeWatcher is user data that reports, on the console, every disk
// with a serial (volumes; the root and config disks have none) each time
// the set changes: "voltest: vdc=<serial>:<marker>.", and writes a
// marker on a volume that has none ("wrote" in that report).
const volumeWatcher = `#!/bin/sh
( last=x
  while :; do
    now=
    for s in /sys/block/*/serial; do
      [ -r "$s" ] || continue
      ser=$(cat "$s")
      [ -n "$ser" ] || continue
      dev=$(basename $(dirname "$s"))
      m=$(dd if=/dev/$dev bs=64 count=1 2>/dev/null | tr -dc 'a-z0-9-')
      if [ -z "$m" ]; then
        printf 'nimbus-marker-%s' "$ser" | dd of=/dev/$dev bs=64 conv=sync,fsync 2>/dev/null
        m=wrote
      fi
      now="$now $dev=$ser:$m"
    done
    if [ "$now" != "$last" ]; then echo "voltest:$now."; last=$now; fi
    sleep 1
  done ) >/dev/console 2>&1 </dev/null &
`

// waitVolumeReport waits until the newest watcher report written after
// offset bytes of the console log satisfies ok, and returns it.
func waitVolumeReport(t *testing.T, d *Driver, uuid string, offset int, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(bootTimeout)
	for {
		b, err := d.ConsoleLog(context.Background(), uuid, 0)
		if err != nil {
			t.Fatal(err)
		}
		last := ""
		if offset < len(b) {
			for _, line := range strings.Split(string(b[offset:]), "\n") {
				if i := strings.Index(line, "voltest:"); i >= 0 {
					last = strings.TrimSpace(line[i:])
				}
			}
		}
		if last != "" && ok(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("no volume report with %s on the console of %s; last %q; console:\n%s", what, uuid, last, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// qomGet reads a string property of a QOM object of the guest.
func qomGet(t *testing.T, d *Driver, uuid, path, prop string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mon, err := d.monitor(ctx, uuid)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	var v string
	if err := mon.Execute(ctx, "qom-get", map[string]any{"path": path, "property": prop}, &v); err != nil {
		t.Fatalf("qom-get %s %s: %v", path, prop, err)
	}
	return v
}

func consoleLen(t *testing.T, d *Driver, uuid string) int {
	t.Helper()
	b, err := d.ConsoleLog(context.Background(), uuid, 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// qemuHas reports which of a volume's three QEMU pieces the guest has.
func qemuHas(t *testing.T, d *Driver, uuid, volumeID string) (creds, node, device bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mon, err := d.monitor(ctx, uuid)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	objs, err := mon.QOMList(ctx, "/objects")
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := mon.QueryNamedBlockNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := mon.QOMList(ctx, "/machine/peripheral")
	if err != nil {
		t.Fatal(err)
	}
	return hasChild(objs, volumeCredsID(volumeID)), hasNode(nodes, volumeNodeName(volumeID)), hasChild(devs, volumeDeviceID(volumeID))
}

// TestVolumesLive attaches volumes served by a real qemu-storage-daemon
// (NBD, TLS-PSK) to a TCG guest, checking each step in QEMU and in the
// guest itself (a watcher in its user data reports the disks it sees by
// serial and writes a marker on each): a refused key that leaves
// nothing behind; hot-plug into the running guest; attach to a paused
// guest; a SCSI volume whose attach and detach are completed after a
// simulated crash halfway; a disk only QEMU has (a crash before the
// record was saved) removed by a detach; a power cycle that keeps the volume and its data; a
// hot-unplug that leaves nothing in QEMU; an attach to the shut-off
// guest that the next boot has; and a second guest booting from a
// volume made from the guest image. One guest serves the first steps to
// keep TCG boots few.
func TestVolumesLive(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	qcow2, probe, _ := guestImage(t)
	state, run := testDirs(t)
	d := newTestDriver(t, Config{StateDir: state, RunDir: run, ProbeKernel: probe})
	ctx := context.Background()

	vdir := t.TempDir()
	keyA, keyB := strings.Repeat("a1", 32), strings.Repeat("b2", 32)
	volA := qsdVolume{id: newUUID(t), file: filepath.Join(vdir, "a.qcow2"), identity: "att-a", key: keyA}
	volS := qsdVolume{id: newUUID(t), file: filepath.Join(vdir, "s.qcow2"), identity: "att-a", key: keyA}
	boot := qsdVolume{id: newUUID(t), file: filepath.Join(vdir, "boot.qcow2"), identity: "att-b", key: keyB}
	for _, v := range []*qsdVolume{&volA, &volS, &boot} {
		v.export = v.id + "-" + v.id[:8]
	}
	qemuImg(t, "create", "-q", "-f", "qcow2", volA.file, "64M")
	qemuImg(t, "create", "-q", "-f", "qcow2", volS.file, "16M")
	qemuImg(t, "convert", "-O", "qcow2", qcow2, boot.file)
	qemuImg(t, "resize", "-q", boot.file, "128M")
	qsd := startStorageDaemon(t, vdir, []qsdVolume{volA, volS, boot})

	uuid := newUUID(t)
	spec := guestSpec(t, uuid)
	cmdline, err := os.ReadFile(filepath.Join(imageDir, "nimbus-guest.cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	spec.Boot = &hypervisor.DirectBoot{
		Kernel:  cachedImage(t, "kernel", filepath.Join(imageDir, "nimbus-guest.vmlinux")),
		Ramdisk: ptr(cachedImage(t, "ramdisk", filepath.Join(imageDir, "nimbus-guest.initrd"))),
		Cmdline: strings.TrimSpace(string(cmdline)),
	}
	spec.ConfigDrive = &hypervisor.ConfigDrive{Files: map[string][]byte{
		"openstack/latest/meta_data.json": []byte(`{"uuid": "` + uuid + `", "name": "voltest", "hostname": "voltest"}`),
		"openstack/latest/user_data":      []byte(volumeWatcher),
	}}
	if _, err := d.Spawn(ctx, spec); err != nil {
		t.Fatalf("spawn: %v", err)
	}
	waitConsole(t, d, uuid, " login: ", 1, bootTimeout)

	serA := volA.id[:20] // what virtio-blk shows the guest
	marked := func(s string) bool { return strings.Contains(s, "="+serA+":nimbus-marker-"+serA) }
	wrote := func() int {
		b, _ := d.ConsoleLog(ctx, uuid, 0)
		return strings.Count(string(b), "="+serA+":wrote")
	}
	diskA := hypervisor.Disk{Name: "vdb", Volume: qsd.conn(volA)}

	t.Run("hot-plug", func(t *testing.T) {
		// The storage daemon refuses a wrong key; the attach fails and
		// leaves nothing behind.
		wrong := diskA
		wrong.Volume = qsd.conn(volA)
		wrong.Volume.PSKKey = strings.Repeat("c3", 32)
		if err := d.AttachVolume(ctx, uuid, wrong); err == nil {
			t.Fatal("attach with a wrong key succeeded")
		} else {
			t.Logf("attach with a wrong key: %v", err)
		}
		if c, n, dev := qemuHas(t, d, uuid, volA.id); c || n || dev {
			t.Fatalf("QEMU has credentials %v, node %v, device %v after a failed attach", c, n, dev)
		}
		if _, err := os.Stat(volumePSKDir(d.guestRunDir(uuid), volA.id)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("key directory after a failed attach: %v", err)
		}
		if got := volumeIDs(t, d, uuid); len(got) != 0 {
			t.Fatalf("saved volumes %v after a failed attach", got)
		}

		off := consoleLen(t, d, uuid)
		if err := d.AttachVolume(ctx, uuid, diskA); err != nil {
			t.Fatalf("attach: %v", err)
		}
		if c, n, dev := qemuHas(t, d, uuid, volA.id); !c || !n || !dev {
			t.Fatalf("QEMU has credentials %v, node %v, device %v after attach", c, n, dev)
		}
		if got := qomGet(t, d, uuid, "/machine/peripheral/"+volumeDeviceID(volA.id), "serial"); got != volA.id {
			t.Fatalf("disk serial %q, want the volume id", got)
		}
		keyFile := filepath.Join(volumePSKDir(d.guestRunDir(uuid), volA.id), "keys.psk")
		if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file %s: %v", keyFile, err)
		}
		report := waitVolumeReport(t, d, uuid, off, "volume A marked", marked)
		t.Logf("guest reports %q", report)
		if err := d.AttachVolume(ctx, uuid, diskA); err != nil {
			t.Fatalf("second attach: %v", err)
		}
		if got := volumeIDs(t, d, uuid); len(got) != 1 || got[0] != volA.id {
			t.Fatalf("saved volumes %v, want [%s]", got, volA.id)
		}
		// The agent's sync reports it: recorded, and connected in QEMU.
		if info, err := d.GetState(ctx, uuid); err != nil || len(info.Volumes) != 1 || info.Volumes[0] != volA.id {
			t.Fatalf("GetState volumes %v (%v), want [%s]", info.Volumes, err, volA.id)
		}
		if n := wrote(); n != 1 {
			t.Fatalf("the guest wrote the marker %d times, want once", n)
		}
		// Diagnostics count the volume's I/O (an anonymous backend, found
		// by its node name).
		diag, err := d.Diagnostics(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		if len(diag.Disks) != 3 || diag.Disks[1].WriteBytes == nil || *diag.Disks[1].WriteBytes <= 0 {
			t.Fatalf("diagnostics disks %+v: want the volume second, with the marker's writes", diag.Disks)
		}
	})

	// A paused guest gets a disk it sees once it runs again, and cannot
	// release one until then.
	t.Run("paused", func(t *testing.T) {
		if err := d.Pause(ctx, uuid); err != nil {
			t.Fatal(err)
		}
		off := consoleLen(t, d, uuid)
		if err := d.AttachVolume(ctx, uuid, hypervisor.Disk{Name: "vdd", Volume: qsd.conn(volS)}); err != nil {
			t.Fatalf("attach to a paused guest: %v", err)
		}
		if err := d.DetachVolume(ctx, uuid, volS.id); !errors.Is(err, hypervisor.ErrInvalidState) {
			t.Fatalf("detach from a paused guest: %v, want ErrInvalidState", err)
		}
		if err := d.Unpause(ctx, uuid); err != nil {
			t.Fatal(err)
		}
		serS := volS.id[:20]
		waitVolumeReport(t, d, uuid, off, "volume S", func(s string) bool { return strings.Contains(s, "="+serS+":") })
		if err := d.DetachVolume(ctx, uuid, volS.id); err != nil {
			t.Fatalf("detach: %v", err)
		}
		if c, n, dev := qemuHas(t, d, uuid, volS.id); c || n || dev {
			t.Fatalf("QEMU has credentials %v, node %v, device %v after detach", c, n, dev)
		}
	})

	// A SCSI volume: the attach finds the credentials and node that an
	// attach interrupted by a crash had added, and adds the controller
	// and the device; the detach finds the device and node gone (a crash
	// after the guest released it) and removes the rest.
	t.Run("scsi-after-crash", func(t *testing.T) {
		diskS := hypervisor.Disk{Name: "sda", Bus: "scsi", Volume: qsd.conn(volS)}
		df := volumeDisk(diskS)
		dir := volumePSKDir(d.guestRunDir(uuid), volS.id)
		if err := writeVolumeKey(dir, df.Volume); err != nil {
			t.Fatal(err)
		}
		mon, err := d.monitor(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		if err := mon.ObjectAdd(ctx, volumeCredsProps(df.Volume, dir)); err != nil {
			t.Fatal(err)
		}
		if err := mon.BlockdevAdd(ctx, volumeBlockdev(df)); err != nil {
			t.Fatal(err)
		}
		mon.Close()
		if err := d.AttachVolume(ctx, uuid, diskS); err != nil {
			t.Fatalf("attach completing a half-done one: %v", err)
		}
		if c, n, dev := qemuHas(t, d, uuid, volS.id); !c || !n || !dev {
			t.Fatalf("QEMU has credentials %v, node %v, device %v after attach", c, n, dev)
		}
		if got := qomGet(t, d, uuid, "/machine/peripheral/"+volumeDeviceID(volS.id), "type"); got != "scsi-hd" {
			t.Fatalf("SCSI volume's device is %q", got)
		}
		if got := qomGet(t, d, uuid, "/machine/peripheral/"+volumeDeviceID(volS.id), "serial"); got != volS.id {
			t.Fatalf("SCSI disk serial %q, want the volume id", got)
		}
		if got := qomGet(t, d, uuid, "/machine/peripheral/"+scsiController, "type"); got != "virtio-scsi-pci" {
			t.Fatalf("controller is %q", got)
		}

		mon, err = d.monitor(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		if err := mon.DeviceDel(ctx, volumeDeviceID(volS.id)); err != nil {
			t.Fatal(err)
		}
		if err := waitDeviceDeleted(ctx, mon, volumeDeviceID(volS.id), time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := mon.BlockdevDel(ctx, volumeNodeName(volS.id)); err != nil {
			t.Fatal(err)
		}
		mon.Close()
		if err := d.DetachVolume(ctx, uuid, volS.id); err != nil {
			t.Fatalf("detach completing a half-done one: %v", err)
		}
		if c, n, dev := qemuHas(t, d, uuid, volS.id); c || n || dev {
			t.Fatalf("QEMU has credentials %v, node %v, device %v after detach", c, n, dev)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("key directory after detach: %v", err)
		}
		if got := volumeIDs(t, d, uuid); len(got) != 1 || got[0] != volA.id {
			t.Fatalf("saved volumes %v, want [%s]", got, volA.id)
		}
	})

	// An attach that crashed after hot-plugging but before saving the
	// record left a disk the record lacks; a detach removes it.
	t.Run("stray-after-crash", func(t *testing.T) {
		df := volumeDisk(hypervisor.Disk{Name: "vde", Volume: qsd.conn(volS)})
		dir := volumePSKDir(d.guestRunDir(uuid), volS.id)
		if err := writeVolumeKey(dir, df.Volume); err != nil {
			t.Fatal(err)
		}
		mon, err := d.monitor(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		if err := mon.ObjectAdd(ctx, volumeCredsProps(df.Volume, dir)); err != nil {
			t.Fatal(err)
		}
		if err := mon.BlockdevAdd(ctx, volumeBlockdev(df)); err != nil {
			t.Fatal(err)
		}
		if err := mon.DeviceAdd(ctx, volumeDeviceProps(df)); err != nil {
			t.Fatal(err)
		}
		mon.Close()
		if err := d.DetachVolume(ctx, uuid, volS.id); err != nil {
			t.Fatalf("detach of a volume only QEMU has: %v", err)
		}
		if c, n, dev := qemuHas(t, d, uuid, volS.id); c || n || dev {
			t.Fatalf("QEMU has credentials %v, node %v, device %v after detach", c, n, dev)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("key directory after detach: %v", err)
		}
		if got := volumeIDs(t, d, uuid); len(got) != 1 || got[0] != volA.id {
			t.Fatalf("saved volumes %v, want [%s]", got, volA.id)
		}
	})

	// Stop and start: the new QEMU has the volume from the saved spec,
	// its key only in the key file, and the guest finds its marker.
	t.Run("power-cycle", func(t *testing.T) {
		off := consoleLen(t, d, uuid)
		if err := d.PowerOff(ctx, uuid, 0); err != nil {
			t.Fatal(err)
		}
		if err := d.PowerOn(ctx, uuid); err != nil {
			t.Fatalf("power on with a volume: %v", err)
		}
		info := wantState(t, d, uuid, hypervisor.Running)
		args, err := os.ReadFile("/proc/" + strconv.Itoa(info.PID) + "/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(args), volumeCredsID(volA.id)) || strings.Contains(string(args), keyA) {
			t.Fatalf("QEMU command line: volume credentials missing, or the key on it: %q", args)
		}
		waitVolumeReport(t, d, uuid, off, "volume A with its marker", marked)
		if n := wrote(); n != 1 {
			t.Fatalf("the guest wrote the marker %d times: it did not find it after the power cycle", n)
		}
	})

	t.Run("hot-unplug", func(t *testing.T) {
		off := consoleLen(t, d, uuid)
		if err := d.DetachVolume(ctx, uuid, volA.id); err != nil {
			t.Fatalf("detach: %v", err)
		}
		if c, n, dev := qemuHas(t, d, uuid, volA.id); c || n || dev {
			t.Fatalf("QEMU has credentials %v, node %v, device %v after detach", c, n, dev)
		}
		if _, err := os.Stat(volumePSKDir(d.guestRunDir(uuid), volA.id)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("key directory after detach: %v", err)
		}
		if got := volumeIDs(t, d, uuid); len(got) != 0 {
			t.Fatalf("saved volumes %v after detach", got)
		}
		if info, err := d.GetState(ctx, uuid); err != nil || len(info.Volumes) != 0 {
			t.Fatalf("GetState volumes %v (%v) after detach", info.Volumes, err)
		}
		waitVolumeReport(t, d, uuid, off, "no volume", func(s string) bool { return s == "voltest:." })
		if err := d.DetachVolume(ctx, uuid, volA.id); err != nil {
			t.Fatalf("second detach: %v", err)
		}
	})

	t.Run("attach-shut-off", func(t *testing.T) {
		if err := d.PowerOff(ctx, uuid, 0); err != nil {
			t.Fatal(err)
		}
		if err := d.AttachVolume(ctx, uuid, diskA); err != nil {
			t.Fatalf("attach to a shut-off guest: %v", err)
		}
		wantState(t, d, uuid, hypervisor.Shutdown)
		off := consoleLen(t, d, uuid)
		if err := d.PowerOn(ctx, uuid); err != nil {
			t.Fatal(err)
		}
		waitVolumeReport(t, d, uuid, off, "volume A with its marker", marked)
		if n := wrote(); n != 1 {
			t.Fatalf("the guest wrote the marker %d times, want once", n)
		}
		if err := d.Destroy(ctx, uuid); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(d.guestRunDir(uuid)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("run directory after destroy: %v", err)
		}
	})

	// Boot from volume: the guest image converted into a volume, booted
	// by the BIOS and the image's boot loader over NBD.
	t.Run("boot-from-volume", func(t *testing.T) {
		bfv := newUUID(t)
		spec := hypervisor.Spec{UUID: bfv, Name: "instance-" + bfv[:8], VCPUs: 1, MemoryMiB: 256,
			Disks: []hypervisor.Disk{{Name: "vda", Volume: qsd.conn(boot)}}}
		if _, err := d.Spawn(ctx, spec); err != nil {
			t.Fatalf("spawn from a volume: %v", err)
		}
		log := waitConsole(t, d, bfv, " login: ", 1, bootTimeout)
		if !strings.Contains(string(log), "SYSLINUX") {
			t.Errorf("the volume's boot loader did not run; console:\n%s", log)
		}
		if _, n, dev := qemuHas(t, d, bfv, boot.id); !n || !dev {
			t.Fatalf("QEMU has node %v, device %v for the root volume", n, dev)
		}
		if err := d.Snapshot(ctx, bfv, filepath.Join(t.TempDir(), "s.qcow2")); !errors.Is(err, hypervisor.ErrInvalidState) {
			t.Errorf("snapshot of a volume-backed guest: %v, want ErrInvalidState", err)
		}
		if err := d.Destroy(ctx, bfv); err != nil {
			t.Fatal(err)
		}
	})

	// What the guest wrote went through NBD into the volume's file.
	out, err := exec.Command("qemu-io", "-U", "-r", "-f", "qcow2", "-c", "read -v 0 16", volA.file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "6e 69 6d 62 75 73 2d 6d 61 72 6b 65 72 2d") { // "nimbus-marker-"
		t.Fatalf("volume A's file lacks the guest's marker: %v\n%s", err, out)
	}
	if _, err := os.Stat(boot.file); err != nil {
		t.Fatalf("the boot volume after its guest was destroyed: %v", err)
	}
}
