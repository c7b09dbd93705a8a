package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/nimbus-cloud/nimbus/internal/config"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor/qemu"
)

// GuestImageDir is where `make up` builds the guest image
// (scripts/build-guest-image.sh) inside the data directory; its kernel
// doubles as the compute agent's acceleration probe kernel.
const GuestImageDir = "guest"

// DefaultAgents decides, for `nimbus up`, the agents the configuration
// left unset: a one-machine cloud should run guests without extra
// settings, so each agent is on when this process can run it — as root,
// with the host tools it drives installed. Explicit settings always win.
// It returns, for each agent left off, why, for the operator's log.
func DefaultAgents(cfg *config.Config) (off []string) {
	if cfg.Compute.Agent.ProbeKernel == "" && cfg.Compute.Agent.VirtType == "" {
		if k := filepath.Join(cfg.DataDir, GuestImageDir, "nimbus-guest.vmlinuz"); fileExists(k) {
			cfg.Compute.Agent.ProbeKernel = k
		}
	}
	netMissing := missingTools("ip", "bridge", "nft", "dnsmasq")
	if os.Geteuid() != 0 {
		netMissing = "it needs root"
	}
	off = defaultSwitch(off, "network agent", &cfg.Network.Agent.Enabled, netMissing)
	cmpMissing := computeAgentMissing(cfg.Compute.Agent)
	switch {
	case cfg.Compute.Agent.Driver == "fake":
	case os.Geteuid() != 0:
		cmpMissing = "it needs root"
	case !cfg.Network.Agent.Enabled.Enabled():
		cmpMissing = "guests need the network agent's bridges and taps"
	}
	off = defaultSwitch(off, "compute agent", &cfg.Compute.Agent.Enabled, cmpMissing)
	return defaultSwitch(off, "volume agent", &cfg.Volume.Agent.Enabled, VolumeAgentMissing())
}

// defaultSwitch turns an unset agent switch on unless something is
// missing, which it then adds to off.
func defaultSwitch(off []string, name string, sw *config.Switch, missing string) []string {
	if sw.IsSet() {
		return off
	}
	sw.Default(missing == "")
	if missing != "" {
		off = append(off, name+" off: "+missing)
	}
	return off
}

// computeAgentMissing says what the compute agent's driver lacks here,
// or "" when it can start.
func computeAgentMissing(ac config.ComputeAgentConfig) string {
	if ac.Driver == "fake" {
		return ""
	}
	if m := missingTools("qemu-system-x86_64", "qemu-img"); m != "" {
		return m
	}
	if ac.VirtType == "" && ac.ProbeKernel == "" && qemu.DefaultProbeKernel() == "" {
		return "no kernel for the KVM/TCG boot probe (build the guest image with scripts/build-guest-image.sh, or set compute.agent.virt_type)"
	}
	return ""
}

// missingTools names the first of the commands not on PATH, as a reason.
func missingTools(names ...string) string {
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			return n + " is not installed"
		}
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// defaultRouteDevice is the interface of the host's IPv4 default route:
// the uplink that carries the host's own address, unless configured.
func defaultRouteDevice(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", "-j", "-4", "route", "show", "default").Output()
	if err != nil {
		return "", fmt.Errorf("find the default route: %w", err)
	}
	var routes []struct {
		Dev string `json:"dev"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return "", fmt.Errorf("find the default route: %w", err)
	}
	for _, r := range routes {
		if r.Dev != "" {
			return r.Dev, nil
		}
	}
	return "", errors.New("the host has no IPv4 default route")
}
