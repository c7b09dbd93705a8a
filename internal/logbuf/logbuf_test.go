package logbuf

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestInfoIsBatchedWarningIsImmediate(t *testing.T) {
	out := &syncBuffer{}
	w := New(out, time.Hour) // the ticker never fires during the test
	log := slog.New(Handler(slog.NewTextHandler(w, nil), w, slog.LevelWarn))
	log.Info("access", "n", 1)
	if out.String() != "" {
		t.Fatalf("info line written before a flush: %q", out.String())
	}
	log.Warn("trouble")
	got := out.String()
	if !strings.Contains(got, "msg=access") || !strings.Contains(got, "msg=trouble") {
		t.Fatalf("after a warning the buffer holds %q; want both lines flushed in order", got)
	}
	if strings.Index(got, "access") > strings.Index(got, "trouble") {
		t.Fatalf("lines out of order: %q", got)
	}
}

func TestIntervalAndCloseFlush(t *testing.T) {
	out := &syncBuffer{}
	w := New(out, 10*time.Millisecond)
	_, _ = w.Write([]byte("tick\n"))
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(out.String(), "tick") {
		if time.Now().After(deadline) {
			t.Fatal("interval flush did not happen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, _ = w.Write([]byte("last\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "last") {
		t.Fatal("Close did not flush")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
