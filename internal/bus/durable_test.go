package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

type buildJob struct {
	InstanceID string
}

type delivery struct {
	job       buildJob
	requestID string
}

func TestDurableCastBeforeConsumer(t *testing.T) {
	s := startTestServer(t, ServerConfig{})
	caster := connectTest(t, Config{URL: s.ClientURL(), Name: "api"})
	ctx := WithRequestID(testContext(t), "req-durable")
	for i := range 3 {
		if err := CastDurable(ctx, caster, "compute.build", buildJob{InstanceID: fmt.Sprint("i-", i)}); err != nil {
			t.Fatalf("cast durable: %v", err)
		}
	}

	// The worker starts only now, on another connection.
	worker := connectTest(t, Config{URL: s.ClientURL(), Name: "compute"})
	got := make(chan delivery, 10)
	if _, err := Consume(testContext(t), worker, "compute.build", func(ctx context.Context, job buildJob) error {
		got <- delivery{job: job, requestID: RequestID(ctx)}
		return nil
	}); err != nil {
		t.Fatalf("consume: %v", err)
	}
	for i := range 3 {
		d := receive(t, got, 5*time.Second, "durable message")
		if want := fmt.Sprint("i-", i); d.job.InstanceID != want {
			t.Errorf("message %d = %q, want %q (in order)", i, d.job.InstanceID, want)
		}
		if d.requestID != "req-durable" {
			t.Errorf("request id = %q, want req-durable", d.requestID)
		}
	}
}

func TestDurableRedeliversOnFailure(t *testing.T) {
	_, b := newTestBus(t)
	attempts := make(chan int, 10)
	n := 0
	if _, err := Consume(testContext(t), b, "volume.delete", func(ctx context.Context, job buildJob) error {
		n++
		attempts <- n
		switch n {
		case 1:
			return errors.New("backend busy")
		case 2:
			panic("backend driver bug")
		}
		return nil
	}, WithRetryDelay(20*time.Millisecond)); err != nil {
		t.Fatalf("consume: %v", err)
	}
	if err := CastDurable(testContext(t), b, "volume.delete", buildJob{InstanceID: "v-1"}); err != nil {
		t.Fatalf("cast durable: %v", err)
	}
	for want := 1; want <= 3; want++ {
		if got := receive(t, attempts, 5*time.Second, fmt.Sprintf("delivery %d", want)); got != want {
			t.Fatalf("delivery %d reported as %d", want, got)
		}
	}
	select {
	case extra := <-attempts:
		t.Errorf("delivery %d after success: message was not acked", extra)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestDurablePermanentFailureDrops(t *testing.T) {
	_, b := newTestBus(t)
	got := make(chan string, 10)
	if _, err := Consume(testContext(t), b, "net.port", func(ctx context.Context, job buildJob) error {
		got <- job.InstanceID
		if job.InstanceID == "bad" {
			return Permanent(errors.New("network deleted"))
		}
		return nil
	}, WithRetryDelay(20*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"bad", "good"} {
		if err := CastDurable(testContext(t), b, "net.port", buildJob{InstanceID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if id := receive(t, got, 5*time.Second, "first"); id != "bad" {
		t.Fatalf("first delivery %q", id)
	}
	if id := receive(t, got, 5*time.Second, "second"); id != "good" {
		t.Fatalf("second delivery %q, want good", id)
	}
	select {
	case id := <-got:
		t.Errorf("unexpected redelivery of %q", id)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestDurableWorkersShareMessages(t *testing.T) {
	s := startTestServer(t, ServerConfig{})
	got := make(chan string, 100)
	for range 2 {
		w := connectTest(t, Config{URL: s.ClientURL()})
		if _, err := Consume(testContext(t), w, "image.convert", func(ctx context.Context, job buildJob) error {
			got <- job.InstanceID
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	caster := connectTest(t, Config{URL: s.ClientURL()})
	const n = 20
	for i := range n {
		if err := CastDurable(testContext(t), caster, "image.convert", buildJob{InstanceID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	for range n {
		seen[receive(t, got, 5*time.Second, "durable message")]++
	}
	for i := range n {
		if c := seen[fmt.Sprint(i)]; c != 1 {
			t.Errorf("message %d delivered %d times, want once", i, c)
		}
	}
}

func TestConsumerName(t *testing.T) {
	a, b := consumerName("a.b"), consumerName("a_b")
	if a == b {
		t.Errorf("consumerName collides for a.b and a_b: %s", a)
	}
	if consumerName("compute.*") == consumerName("compute.>") {
		t.Error("consumerName collides for wildcards")
	}
}
