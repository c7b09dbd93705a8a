package bus

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestServerRandomPort(t *testing.T) {
	s := startTestServer(t, ServerConfig{})
	if u := s.ClientURL(); !strings.HasPrefix(u, "nats://127.0.0.1:") || strings.HasSuffix(u, ":0") {
		t.Errorf("ClientURL = %q, want nats://127.0.0.1:<port>", u)
	}
}

func TestInProcessServer(t *testing.T) {
	s := startTestServer(t, ServerConfig{Port: -1})
	if u := s.ClientURL(); u != "" {
		t.Errorf("ClientURL = %q, want empty for an in-process server", u)
	}
	b := connectTest(t, Config{Server: s})
	mustHandle(t, b, "echo", "echo", func(ctx context.Context, s string) (string, error) { return s, nil })
	if got, err := Call[string, string](testContext(t), b, "echo", "hi"); err != nil || got != "hi" {
		t.Fatalf("call = %q, %v", got, err)
	}
	if err := CastDurable(testContext(t), b, "jobs", "x"); err != nil {
		t.Fatalf("durable cast in-process: %v", err)
	}
}

func TestConnectWaitsForServer(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	started := make(chan *Server, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // the bus comes up after the service
		s, err := StartServer(ServerConfig{Port: port, StoreDir: dir, Logger: testLogger(t)})
		if err != nil {
			t.Errorf("start server: %v", err)
		}
		started <- s
	}()
	b := connectTest(t, Config{URL: "nats://127.0.0.1:" + strconv.Itoa(port)})
	if s := receive(t, started, 10*time.Second, "server start"); s != nil {
		t.Cleanup(s.Shutdown)
	}
	if !b.Connected() {
		t.Error("Connected() = false after Connect")
	}
}

func TestConnectGivesUpWithContext(t *testing.T) {
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Connect(ctx, Config{URL: "nats://127.0.0.1:" + strconv.Itoa(port), Logger: testLogger(t), ReconnectWait: 50 * time.Millisecond})
	if err == nil {
		t.Fatal("connect to nothing succeeded")
	}
}
