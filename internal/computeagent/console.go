package computeagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/nimbus-cloud/nimbus/internal/compute"
	"github.com/nimbus-cloud/nimbus/internal/hypervisor"
)

// consoleLogLimit bounds the console log read for one answer; Nova reads
// at most 100 KiB too (MAX_CONSOLE_BYTES).
const consoleLogLimit = 100 << 10

// console answers console calls: the tail of the serial log, or where
// the guest's VNC server or serial console listens, for the console
// proxy.
func (a *Agent) console(ctx context.Context, req compute.ConsoleRequest) (compute.ConsoleReply, error) {
	switch req.Type {
	case "log", "":
		b, err := a.cfg.Driver.ConsoleLog(ctx, req.InstanceID, consoleLogLimit)
		if err != nil {
			return compute.ConsoleReply{}, consoleErr(req.InstanceID, err)
		}
		return compute.ConsoleReply{Output: tailLog(string(b), req.Length)}, nil
	case "novnc", "vnc", "serial":
		info, err := a.cfg.Driver.GetState(ctx, req.InstanceID)
		if err != nil {
			return compute.ConsoleReply{}, consoleErr(req.InstanceID, err)
		}
		addr := info.VNC
		if req.Type == "serial" {
			addr = info.Serial
		}
		return consoleAddr(req.InstanceID, req.Type, addr)
	}
	return compute.ConsoleReply{}, fmt.Errorf("console type %s is not supported by this host", req.Type)
}

// consoleAddr turns a driver's host:port into a reply; a guest that is
// not running has none.
func consoleAddr(id, typ, addr string) (compute.ConsoleReply, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return compute.ConsoleReply{}, fmt.Errorf("guest %s has no %s console (not running)", id, typ)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return compute.ConsoleReply{}, fmt.Errorf("guest %s: %s console port %q: %w", id, typ, port, err)
	}
	return compute.ConsoleReply{Host: host, Port: p}, nil
}

func consoleErr(id string, err error) error {
	if errors.Is(err, hypervisor.ErrNotFound) {
		return fmt.Errorf("no guest %s on this host", id)
	}
	return fmt.Errorf("console of %s: %w", id, err)
}

// tailLog is Nova's _tail_log: the log split on "\n", the last length
// pieces joined again. A log ending in a newline thus gives length-1
// lines and a final newline; Tempest counts the pieces.
func tailLog(log string, length int) string {
	if length <= 0 {
		return log
	}
	pieces := strings.Split(log, "\n")
	if len(pieces) > length {
		pieces = pieces[len(pieces)-length:]
	}
	return strings.Join(pieces, "\n")
}
