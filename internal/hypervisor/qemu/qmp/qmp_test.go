package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// fakeQEMU is a QMP server on a unix socket that answers with handler,
// which may also write events before its reply.
type fakeQEMU struct {
	path     string
	commands chan string
}

const greeting = `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "test"}, "capabilities": ["oob"]}}`

type request struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
	ID        json.RawMessage `json:"id"`
}

func startFake(t *testing.T, banner string, handler func(w *json.Encoder, req request) bool) *fakeQEMU {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qmp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeQEMU{path: path, commands: make(chan string, 100)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn) {
				defer conn.Close()
				conn.Write([]byte(banner + "\r\n"))
				r := bufio.NewScanner(conn)
				w := json.NewEncoder(conn)
				for r.Scan() {
					var req request
					if err := json.Unmarshal(r.Bytes(), &req); err != nil {
						return
					}
					f.commands <- req.Execute
					if req.Execute == "qmp_capabilities" {
						w.Encode(map[string]any{"return": map[string]any{}, "id": req.ID})
						continue
					}
					if !handler(w, req) {
						return // close the connection
					}
				}
			}(conn)
		}
	}()
	return f
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestHandshakeStatusAndEvents: the client negotiates capabilities first,
// matches the reply by id even when events arrive before it, and delivers
// those events in order.
func TestHandshakeStatusAndEvents(t *testing.T) {
	f := startFake(t, greeting, func(w *json.Encoder, req request) bool {
		switch req.Execute {
		case "query-status":
			w.Encode(map[string]any{"event": "STOP", "timestamp": map[string]int{"seconds": 1700000000, "microseconds": 5}})
			w.Encode(map[string]any{"event": "RESUME", "timestamp": map[string]int{"seconds": 1700000001, "microseconds": 0}})
			w.Encode(map[string]any{"return": map[string]any{"status": "running", "running": true}, "id": req.ID})
		case "system_powerdown":
			w.Encode(map[string]any{"return": map[string]any{}, "id": req.ID})
			w.Encode(map[string]any{"event": "SHUTDOWN", "data": map[string]any{"guest": true, "reason": "guest-shutdown"}, "timestamp": map[string]int{"seconds": 1700000002}})
		}
		return true
	})
	m, err := Dial(ctx(t), f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := <-f.commands; got != "qmp_capabilities" {
		t.Fatalf("first command %q, want qmp_capabilities", got)
	}
	if v := m.Greeting().QMP.Version.QEMU; v.Major != 7 || v.Minor != 2 {
		t.Fatalf("greeting version %+v", v)
	}
	st, err := m.QueryStatus(ctx(t))
	if err != nil || st.Status != "running" || !st.Running {
		t.Fatalf("query-status: %+v %v", st, err)
	}
	if err := m.SystemPowerdown(ctx(t)); err != nil {
		t.Fatal(err)
	}
	var names []string
	for len(names) < 3 {
		select {
		case ev := <-m.Events():
			names = append(names, ev.Name)
			if ev.Name == "STOP" && ev.Time.Unix() != 1700000000 {
				t.Errorf("STOP timestamp %v", ev.Time)
			}
			if ev.Name == "SHUTDOWN" && string(ev.Data) == "" {
				t.Errorf("SHUTDOWN without data")
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("events so far %v", names)
		}
	}
	if names[0] != "STOP" || names[1] != "RESUME" || names[2] != "SHUTDOWN" {
		t.Fatalf("events %v", names)
	}
}

// TestErrorReply: an error reply becomes a *Error with QEMU's class.
func TestErrorReply(t *testing.T) {
	f := startFake(t, greeting, func(w *json.Encoder, req request) bool {
		w.Encode(map[string]any{"error": map[string]any{"class": "CommandNotFound", "desc": "The command nope has not been found"}, "id": req.ID})
		return true
	})
	m, err := Dial(ctx(t), f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.Execute(ctx(t), "nope", map[string]any{"x": 1}, nil)
	var qe *Error
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Fatalf("err %v, want CommandNotFound", err)
	}
	// The connection stays usable after an error reply.
	if err := m.Execute(ctx(t), "nope", nil, nil); !errors.As(err, &qe) {
		t.Fatalf("second command: %v", err)
	}
}

// TestTimeoutAndClose: a command QEMU never answers ends with the
// context; a connection QEMU closes fails pending and later commands with
// ErrClosed, and Quit counts a close as success.
func TestTimeoutAndClose(t *testing.T) {
	f := startFake(t, greeting, func(w *json.Encoder, req request) bool {
		switch req.Execute {
		case "stop":
			return true // never answer
		case "quit":
			return false // QEMU exits before replying
		}
		return false
	})
	m, err := Dial(ctx(t), f.path)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := m.Stop(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop: %v, want deadline exceeded", err)
	}
	if err := m.Quit(ctx(t)); err != nil {
		t.Fatalf("quit: %v", err)
	}
	select {
	case <-m.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("monitor not done after the server closed")
	}
	if err := m.Cont(ctx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("cont after close: %v, want ErrClosed", err)
	}
	if _, ok := <-m.Events(); ok {
		t.Fatal("events channel still open")
	}
}

func TestBadGreeting(t *testing.T) {
	f := startFake(t, `{"hello": 1}`, func(*json.Encoder, request) bool { return true })
	if _, err := Dial(ctx(t), f.path); err == nil {
		t.Fatal("dial accepted a server that is not QMP")
	}
	if _, err := Dial(ctx(t), filepath.Join(t.TempDir(), "missing.sock")); err == nil {
		t.Fatal("dial of a missing socket succeeded")
	}
}

// TestConcurrentCommands: replies are matched by id, whatever their order.
func TestConcurrentCommands(t *testing.T) {
	f := startFake(t, greeting, func(w *json.Encoder, req request) bool {
		var args struct{ URI string }
		json.Unmarshal(req.Arguments, &args)
		w.Encode(map[string]any{"return": map[string]any{"status": args.URI, "running": false}, "id": req.ID})
		return true
	})
	m, err := Dial(ctx(t), f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		go func(i int) {
			want := string(rune('a' + i))
			var st Status
			err := m.Execute(ctx(t), "echo", map[string]string{"uri": want}, &st)
			if err == nil && st.Status != want {
				err = errors.New("reply " + st.Status + " for request " + want)
			}
			errs <- err
		}(i)
	}
	for i := 0; i < 20; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
