package qemu

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Virt types, as Nova's [libvirt] virt_type spells them.
const (
	VirtKVM  = "kvm"
	VirtQEMU = "qemu" // TCG: software emulation
)

// probeMarker is what the probe's init writes to the serial console.
const probeMarker = "NIMBUS-PROBE-OK"

// ChooseAccel decides between KVM and TCG by booting kernel with a one-file
// initramfs under KVM and waiting for its init to print probeMarker on the
// serial console. The existence of /dev/kvm proves nothing: on nested or
// paravirtualised hosts it opens fine yet cannot run an ordinary guest
// (QEMU either aborts on an MSR or hangs without output), so only a real
// boot counts. Any failure of the KVM probe means TCG. With verifyTCG the
// same probe must then boot under TCG, or ChooseAccel fails: QEMU cannot
// run guests here at all. That check costs a TCG kernel boot (seconds), so
// the agent skips it at start and lets the first spawn tell.
func ChooseAccel(ctx context.Context, qemuBin, kernel, workDir string, timeout time.Duration, verifyTCG bool) (virtType string, kvmErr error, err error) {
	if kernel == "" {
		return "", nil, errors.New("accel probe: no kernel to boot (set ProbeKernel, or VirtType to skip the probe)")
	}
	kvmErr = probe(ctx, qemuBin, kernel, workDir, VirtKVM, timeout)
	if kvmErr == nil {
		return VirtKVM, nil, nil
	}
	if !verifyTCG {
		return VirtQEMU, kvmErr, nil
	}
	if err := probe(ctx, qemuBin, kernel, workDir, VirtQEMU, 6*timeout); err != nil {
		return "", kvmErr, fmt.Errorf("accel probe: qemu cannot boot a guest even under TCG: %w", err)
	}
	return VirtQEMU, kvmErr, nil
}

// probe boots kernel with the probe initramfs under accel and waits for the
// marker; the QEMU process is always killed before probe returns.
func probe(ctx context.Context, qemuBin, kernel, workDir, accel string, timeout time.Duration) error {
	if accel == VirtKVM {
		if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
			return fmt.Errorf("open /dev/kvm: %w", err)
		} else {
			f.Close()
		}
	}
	dir, err := os.MkdirTemp(workDir, "accel-probe-")
	if err != nil {
		return fmt.Errorf("accel probe: %w", err)
	}
	defer os.RemoveAll(dir)
	initrd := filepath.Join(dir, "initrd")
	if err := os.WriteFile(initrd, probeInitramfs(), 0o644); err != nil {
		return fmt.Errorf("accel probe: %w", err)
	}
	logPath := filepath.Join(dir, "serial.log")
	machine := "pc,accel=" + map[string]string{VirtKVM: "kvm", VirtQEMU: "tcg"}[accel]
	args := []string{
		"-machine", machine, "-m", "256", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-chardev", "file,id=serial0,path=" + logPath, "-device", "isa-serial,chardev=serial0",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 quiet panic=-1 rdinit=/init cryptomgr.notests",
	}
	if accel == VirtKVM {
		args = append(args, "-cpu", "host")
	}
	// stderr goes to a file, not a pipe: Wait then returns as soon as
	// QEMU is gone, whatever else might hold a pipe open.
	errPath := filepath.Join(dir, "stderr")
	errFile, err := os.Create(errPath)
	if err != nil {
		return fmt.Errorf("accel probe: %w", err)
	}
	defer errFile.Close()
	stderr := func() string {
		b, _ := os.ReadFile(errPath)
		return strings.TrimSpace(string(b))
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.Command(qemuBin, args...)
	cmd.Stdout, cmd.Stderr = errFile, errFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("accel probe %s: start %s: %w", accel, qemuBin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case <-exited:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
			}
		}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte(probeMarker)) {
			return nil
		}
		select {
		case werr := <-exited:
			exited <- werr // for the deferred wait
			if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte(probeMarker)) {
				return nil
			}
			return fmt.Errorf("accel probe %s: qemu exited without booting (%v): %s", accel, werr, stderr())
		case <-pctx.Done():
			return fmt.Errorf("accel probe %s: no boot marker within %s: %s", accel, timeout, stderr())
		case <-tick.C:
		}
	}
}

// probeInitramfs is a newc cpio holding /dev/console and /init, a static
// x86-64 program of a few dozen bytes that writes probeMarker and powers
// the machine off. Being generated here, the probe needs nothing on the
// host but QEMU and a kernel.
func probeInitramfs() []byte {
	var buf bytes.Buffer
	ino := 1
	add := func(name string, mode uint32, rdevMajor, rdevMinor int, data []byte) {
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
		ino++
		buf.WriteString(hdr)
		buf.WriteString(name)
		buf.WriteByte(0)
		for buf.Len()%4 != 0 {
			buf.WriteByte(0)
		}
		buf.Write(data)
		for buf.Len()%4 != 0 {
			buf.WriteByte(0)
		}
	}
	add("dev", 0o040755, 0, 0, nil)
	add("dev/console", 0o020600, 5, 1, nil)
	add("init", 0o100755, 0, 0, probeInit())
	add("TRAILER!!!", 0, 0, 0, nil)
	return buf.Bytes()
}

// probeInit assembles the probe's init: write(1, msg), then
// reboot(LINUX_REBOOT_CMD_POWER_OFF), then spin.
func probeInit() []byte {
	const base = 0x400000
	const hdrLen = 64 + 56
	msg := []byte(probeMarker + "\n")
	code := []byte{
		0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (write)
		0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1
		0x48, 0x8d, 0x35, 0, 0, 0, 0, // lea rsi, [rip+msg]
		0xba, byte(len(msg)), 0x00, 0x00, 0x00, // mov edx, len
		0x0f, 0x05, // syscall
		0xb8, 0xa9, 0x00, 0x00, 0x00, // mov eax, 169 (reboot)
		0xbf, 0xad, 0xde, 0xe1, 0xfe, // mov edi, LINUX_REBOOT_MAGIC1
		0xbe, 0x69, 0x19, 0x12, 0x28, // mov esi, LINUX_REBOOT_MAGIC2
		0xba, 0xdc, 0xfe, 0x21, 0x43, // mov edx, LINUX_REBOOT_CMD_POWER_OFF
		0x0f, 0x05, // syscall
		0xeb, 0xfe, // jmp .
	}
	// rip-relative displacement: from the end of the lea (offset 17) to msg.
	binary.LittleEndian.PutUint32(code[13:17], uint32(len(code)-17))
	body := append(code, msg...)
	total := hdrLen + len(body)

	b := make([]byte, hdrLen, total)
	copy(b[0:], []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2)    // ET_EXEC
	le.PutUint16(b[18:], 0x3e) // EM_X86_64
	le.PutUint32(b[20:], 1)    // EV_CURRENT
	le.PutUint64(b[24:], base+hdrLen)
	le.PutUint64(b[32:], 64) // e_phoff
	le.PutUint16(b[52:], 64) // e_ehsize
	le.PutUint16(b[54:], 56) // e_phentsize
	le.PutUint16(b[56:], 1)  // e_phnum
	ph := b[64:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5) // PF_R|PF_X
	le.PutUint64(ph[8:], 0) // p_offset
	le.PutUint64(ph[16:], base)
	le.PutUint64(ph[24:], base)
	le.PutUint64(ph[32:], uint64(total))
	le.PutUint64(ph[40:], uint64(total))
	le.PutUint64(ph[48:], 0x1000)
	return append(b, body...)
}
