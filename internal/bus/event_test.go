package bus

import (
	"context"
	"testing"
	"time"
)

type stateChanged struct {
	InstanceID string
	State      string
}

type received struct {
	who       int
	ev        stateChanged
	requestID string
}

func TestPublishFansOut(t *testing.T) {
	s := startTestServer(t, ServerConfig{})
	got := make(chan received, 10)
	for i := range 2 {
		b := connectTest(t, Config{URL: s.ClientURL()})
		_, err := Subscribe(b, "events.instance.>", "", func(ctx context.Context, ev stateChanged) error {
			got <- received{who: i, ev: ev, requestID: RequestID(ctx)}
			return nil
		})
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	pub := connectTest(t, Config{URL: s.ClientURL()})

	want := stateChanged{InstanceID: "i-1", State: "ACTIVE"}
	ctx := WithRequestID(testContext(t), "req-event")
	if err := Publish(ctx, pub, "events.instance.i-1", want); err != nil {
		t.Fatalf("publish: %v", err)
	}
	seen := map[int]bool{}
	for range 2 {
		r := receive(t, got, 5*time.Second, "event")
		if r.ev != want || r.requestID != "req-event" {
			t.Errorf("subscriber %d got %+v with request id %q", r.who, r.ev, r.requestID)
		}
		seen[r.who] = true
	}
	if !seen[0] || !seen[1] {
		t.Errorf("subscribers that got the event: %v, want both", seen)
	}
}

func TestCastGoesToOneQueueMember(t *testing.T) {
	s := startTestServer(t, ServerConfig{})
	got := make(chan int, 100)
	for range 2 {
		b := connectTest(t, Config{URL: s.ClientURL()})
		if _, err := Subscribe(b, "cmd.refresh", "refreshers", func(ctx context.Context, n int) error {
			got <- n
			return nil
		}); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	sender := connectTest(t, Config{URL: s.ClientURL()})
	const n = 20
	for i := range n {
		if err := Cast(testContext(t), sender, "cmd.refresh", i); err != nil {
			t.Fatalf("cast: %v", err)
		}
	}
	seen := map[int]int{}
	for range n {
		seen[receive(t, got, 5*time.Second, "cast")]++
	}
	for i := range n {
		if seen[i] != 1 {
			t.Errorf("cast %d handled %d times, want once", i, seen[i])
		}
	}
}

func TestCastRunsCallHandler(t *testing.T) {
	_, b := newTestBus(t)
	got := make(chan string, 1)
	mustHandle(t, b, "cmd.note", "notes", func(ctx context.Context, s string) (int, error) {
		got <- s
		return len(s), nil
	})
	if err := Cast(testContext(t), b, "cmd.note", "hello"); err != nil {
		t.Fatalf("cast: %v", err)
	}
	if s := receive(t, got, 5*time.Second, "cast"); s != "hello" {
		t.Errorf("handler got %q", s)
	}
}

func TestSubscriberPanicIsContained(t *testing.T) {
	_, b := newTestBus(t)
	got := make(chan int, 2)
	if _, err := Subscribe(b, "ev", "", func(ctx context.Context, n int) error {
		if n == 0 {
			panic("bad event")
		}
		got <- n
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1} {
		if err := Publish(testContext(t), b, "ev", n); err != nil {
			t.Fatal(err)
		}
	}
	if n := receive(t, got, 5*time.Second, "event after panic"); n != 1 {
		t.Errorf("got %d, want 1", n)
	}
}
