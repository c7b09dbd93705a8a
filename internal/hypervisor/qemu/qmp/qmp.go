// Package qmp is a small client for the QEMU Machine Protocol: the JSON
// monitor on a unix socket through which the qemu driver controls each
// guest. It does the capabilities handshake, runs commands with ids so that
// replies are matched even when events interleave, and delivers
// asynchronous events (SHUTDOWN, STOP, RESUME, RESET, ...) on a channel.
//
// It is our own rather than a library because the driver needs a dozen
// commands and precise control over timeouts and disconnects; see
// https://www.qemu.org/docs/master/interop/qemu-qmp-ref.html.
package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// ErrClosed is returned for commands on a monitor whose connection has
// ended (QEMU exited, or Close was called).
var ErrClosed = errors.New("qmp: connection closed")

// Error is an error reply from QEMU.
type Error struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

// Error formats the reply as QEMU words it.
func (e *Error) Error() string { return fmt.Sprintf("qmp: %s: %s", e.Class, e.Desc) }

// Event is an asynchronous QMP event.
type Event struct {
	Name string          `json:"event"`
	Data json.RawMessage `json:"data,omitempty"`
	// Time is QEMU's timestamp of the event.
	Time time.Time `json:"-"`
}

// Greeting is the server's banner, which carries QEMU's version.
type Greeting struct {
	QMP struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
			Package string `json:"package"`
		} `json:"version"`
		Capabilities []string `json:"capabilities"`
	} `json:"QMP"`
}

// message is any line QEMU sends: a reply, an error or an event.
type message struct {
	ID        json.RawMessage `json:"id,omitempty"`
	Return    json.RawMessage `json:"return,omitempty"`
	Error     *Error          `json:"error,omitempty"`
	Event     string          `json:"event,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp,omitempty"`
}

type reply struct {
	ret json.RawMessage
	err error
}

// Monitor is one QMP connection. Its methods are safe for concurrent use.
type Monitor struct {
	conn     net.Conn
	greeting Greeting
	events   chan Event
	done     chan struct{}

	wmu sync.Mutex // serialises writes to conn

	mu      sync.Mutex // guards the fields below
	nextID  uint64
	pending map[string]chan reply
	err     error // why the connection ended
	dropped int   // events dropped because nobody read them
}

// eventBuffer bounds the events kept for a slow reader; beyond it events
// are dropped (and counted) rather than stalling command replies.
const eventBuffer = 256

// Dial connects to the QMP socket at path and completes the capabilities
// negotiation; ctx bounds the whole handshake.
func Dial(ctx context.Context, path string) (*Monitor, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: dial %s: %w", path, err)
	}
	m, err := newMonitor(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp: handshake on %s: %w", path, err)
	}
	return m, nil
}

func newMonitor(ctx context.Context, conn net.Conn) (*Monitor, error) {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	m := &Monitor{
		conn:    conn,
		events:  make(chan Event, eventBuffer),
		done:    make(chan struct{}),
		pending: map[string]chan reply{},
	}
	if err := json.Unmarshal(line, &m.greeting); err != nil || m.greeting.QMP.Version.QEMU.Major == 0 && m.greeting.QMP.Capabilities == nil {
		return nil, fmt.Errorf("not a QMP greeting: %q", line)
	}
	conn.SetDeadline(time.Time{})
	go m.readLoop(r)
	if err := m.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		m.Close()
		return nil, fmt.Errorf("qmp_capabilities: %w", err)
	}
	return m, nil
}

// Greeting returns the server's banner.
func (m *Monitor) Greeting() Greeting { return m.greeting }

// Events delivers asynchronous events in order. It is closed when the
// connection ends.
func (m *Monitor) Events() <-chan Event { return m.events }

// Done is closed when the connection has ended; Err then says why.
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Err is why the connection ended, nil while it is open.
func (m *Monitor) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close ends the connection; QEMU keeps running.
func (m *Monitor) Close() error {
	err := m.conn.Close()
	<-m.done
	return err
}

func (m *Monitor) readLoop(r *bufio.Reader) {
	var end error
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			end = err
			break
		}
		var msg message
		if err := json.Unmarshal(line, &msg); err != nil {
			end = fmt.Errorf("malformed message %q: %w", line, err)
			break
		}
		switch {
		case msg.Event != "":
			ev := Event{Name: msg.Event, Data: msg.Data}
			if msg.Timestamp != nil {
				ev.Time = time.Unix(msg.Timestamp.Seconds, msg.Timestamp.Microseconds*1000)
			}
			select {
			case m.events <- ev:
			default:
				m.mu.Lock()
				m.dropped++
				m.mu.Unlock()
			}
		case msg.ID != nil:
			var id string
			if err := json.Unmarshal(msg.ID, &id); err != nil {
				continue // not one of ours
			}
			m.mu.Lock()
			ch := m.pending[id]
			delete(m.pending, id)
			m.mu.Unlock()
			if ch == nil {
				continue
			}
			if msg.Error != nil {
				ch <- reply{err: msg.Error}
			} else {
				ch <- reply{ret: msg.Return}
			}
		}
	}
	m.mu.Lock()
	m.err = fmt.Errorf("%w: %v", ErrClosed, end)
	for id, ch := range m.pending {
		ch <- reply{err: m.err}
		delete(m.pending, id)
	}
	m.mu.Unlock()
	m.conn.Close()
	close(m.events)
	close(m.done)
}

// Execute runs one command with arguments args (nil for none) and decodes
// its return value into result (nil to ignore it).
func (m *Monitor) Execute(ctx context.Context, command string, args, result any) error {
	m.mu.Lock()
	if m.err != nil {
		err := m.err
		m.mu.Unlock()
		return err
	}
	m.nextID++
	id := "nimbus-" + strconv.FormatUint(m.nextID, 10)
	ch := make(chan reply, 1)
	m.pending[id] = ch
	m.mu.Unlock()

	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{command, args, id}
	b, err := json.Marshal(req)
	if err != nil {
		m.forget(id)
		return fmt.Errorf("qmp: encode %s: %w", command, err)
	}
	b = append(b, '\n')
	m.wmu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		m.conn.SetWriteDeadline(dl)
	} else {
		m.conn.SetWriteDeadline(time.Time{})
	}
	_, err = m.conn.Write(b)
	m.wmu.Unlock()
	if err != nil {
		m.forget(id)
		return fmt.Errorf("qmp: send %s: %w", command, errors.Join(ErrClosed, err))
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return fmt.Errorf("qmp: %s: %w", command, r.err)
		}
		if result != nil && len(r.ret) > 0 {
			if err := json.Unmarshal(r.ret, result); err != nil {
				return fmt.Errorf("qmp: decode %s reply: %w", command, err)
			}
		}
		return nil
	case <-ctx.Done():
		m.forget(id)
		return fmt.Errorf("qmp: %s: %w", command, ctx.Err())
	}
}

func (m *Monitor) forget(id string) {
	m.mu.Lock()
	delete(m.pending, id)
	m.mu.Unlock()
}

// Status is the reply of query-status.
type Status struct {
	// Status is QEMU's run state: "running", "paused", "shutdown",
	// "inmigrate", "postmigrate", "prelaunch", "guest-panicked", ...
	Status  string `json:"status"`
	Running bool   `json:"running"`
}

// QueryStatus asks for the VM's run state.
func (m *Monitor) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	err := m.Execute(ctx, "query-status", nil, &s)
	return s, err
}

// SystemPowerdown presses the ACPI power button; the guest decides.
func (m *Monitor) SystemPowerdown(ctx context.Context) error {
	return m.Execute(ctx, "system_powerdown", nil, nil)
}

// SystemReset resets the VM as the reset button would.
func (m *Monitor) SystemReset(ctx context.Context) error {
	return m.Execute(ctx, "system_reset", nil, nil)
}

// Stop pauses the vCPUs.
func (m *Monitor) Stop(ctx context.Context) error { return m.Execute(ctx, "stop", nil, nil) }

// Cont resumes the vCPUs.
func (m *Monitor) Cont(ctx context.Context) error { return m.Execute(ctx, "cont", nil, nil) }

// Quit makes QEMU exit at once. QEMU may close the socket before its
// reply arrives, so a closed connection counts as success.
func (m *Monitor) Quit(ctx context.Context) error {
	err := m.Execute(ctx, "quit", nil, nil)
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// Migrate starts an outgoing migration to uri (the driver uses
// "exec:cat > FILE" to save a suspended guest).
func (m *Monitor) Migrate(ctx context.Context, uri string) error {
	return m.Execute(ctx, "migrate", map[string]any{"uri": uri}, nil)
}

// MigrationInfo is the part of query-migrate the driver uses.
type MigrationInfo struct {
	// Status is "none", "setup", "active", "completed", "failed", ...
	Status    string `json:"status"`
	ErrorDesc string `json:"error-desc,omitempty"`
}

// QueryMigrate reports the progress of a migration.
func (m *Monitor) QueryMigrate(ctx context.Context) (MigrationInfo, error) {
	var mi MigrationInfo
	err := m.Execute(ctx, "query-migrate", nil, &mi)
	return mi, err
}

// IsDeviceNotFound reports whether err is QEMU's answer for a device id
// it does not have, which makes removing a device idempotent.
func IsDeviceNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Class == "DeviceNotFound"
}

// NetdevAdd adds a network backend (netdev_add); args are the backend's
// options, as -netdev takes them ("type", "id", "ifname", ...).
func (m *Monitor) NetdevAdd(ctx context.Context, args map[string]any) error {
	return m.Execute(ctx, "netdev_add", args, nil)
}

// NetdevDel removes the network backend id.
func (m *Monitor) NetdevDel(ctx context.Context, id string) error {
	return m.Execute(ctx, "netdev_del", map[string]any{"id": id}, nil)
}

// DeviceAdd hot-plugs a device (device_add); args are the device's
// properties, as -device takes them ("driver", "id", ...).
func (m *Monitor) DeviceAdd(ctx context.Context, args map[string]any) error {
	return m.Execute(ctx, "device_add", args, nil)
}

// DeviceDel asks the guest to release device id. The removal completes
// when QEMU emits DEVICE_DELETED for it, which needs the guest's
// cooperation (ACPI hot-unplug).
func (m *Monitor) DeviceDel(ctx context.Context, id string) error {
	return m.Execute(ctx, "device_del", map[string]any{"id": id}, nil)
}

// InjectNMI sends a non-maskable interrupt to the guest's vCPUs.
func (m *Monitor) InjectNMI(ctx context.Context) error {
	return m.Execute(ctx, "inject-nmi", nil, nil)
}
