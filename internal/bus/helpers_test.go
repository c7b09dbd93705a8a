package bus

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// testLogger returns a logger for t. Output goes to a buffer that is
// printed only if t fails, so passing runs stay quiet and failing ones show
// what the bus did; with -v and BUS_TEST_DEBUG set it streams to stderr.
func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() && os.Getenv("BUS_TEST_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if l, ok := testLoggers.Load(t); ok {
		return l.(*slog.Logger)
	}
	buf := &syncBuffer{}
	l := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	testLoggers.Store(t, l)
	t.Cleanup(func() {
		testLoggers.Delete(t)
		if t.Failed() {
			t.Logf("bus log:\n%s", buf.String())
		}
	})
	return l
}

// testLoggers holds one logger per running test.
var testLoggers sync.Map // *testing.T -> *slog.Logger

// syncBuffer is a bytes.Buffer safe for the concurrent writes of handlers
// and the embedded server.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startTestServer starts an embedded server that is shut down when the test
// ends.
func startTestServer(t *testing.T, cfg ServerConfig) *Server {
	t.Helper()
	cfg.Logger = testLogger(t)
	s, err := StartServer(cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// connectTest connects a client that is closed when the test ends. Cleanups
// run last-in first-out, so clients close before their server stops.
func connectTest(t *testing.T, cfg Config) *Bus {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.ReconnectWait == 0 {
		cfg.ReconnectWait = 50 * time.Millisecond
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close bus %s: %v", cfg.Name, err)
		}
	})
	return b
}

// newTestBus starts a server and connects one client to it.
func newTestBus(t *testing.T) (*Server, *Bus) {
	t.Helper()
	s := startTestServer(t, ServerConfig{})
	return s, connectTest(t, Config{URL: s.ClientURL(), Name: t.Name()})
}

// receive waits for a value on ch or fails the test after d.
func receive[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %s waiting for %s", d, what)
		panic("unreachable")
	}
}

// freePort returns a TCP port that was free a moment ago, for tests that
// must restart a server on the same port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func mustHandle[Req, Resp any](t *testing.T, b *Bus, subject, queue string, h func(context.Context, Req) (Resp, error), opts ...Option) *Subscription {
	t.Helper()
	s, err := Handle(b, subject, queue, h, opts...)
	if err != nil {
		t.Fatalf("handle %s: %v", subject, err)
	}
	return s
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
