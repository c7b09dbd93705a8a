package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

type addReq struct {
	A, B int
	Tag  string
}

type addResp struct {
	Sum       int
	RequestID string
}

func TestCallRoundTrip(t *testing.T) {
	_, b := newTestBus(t)
	mustHandle(t, b, "math.add", "math", func(ctx context.Context, req addReq) (addResp, error) {
		return addResp{Sum: req.A + req.B, RequestID: RequestID(ctx)}, nil
	})

	ctx := WithRequestID(testContext(t), "req-1234")
	resp, err := Call[addReq, addResp](ctx, b, "math.add", addReq{A: 2, B: 40})
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if resp.Sum != 42 {
		t.Errorf("sum = %d, want 42", resp.Sum)
	}
	if resp.RequestID != "req-1234" {
		t.Errorf("handler saw request id %q, want req-1234", resp.RequestID)
	}
}

func TestCallMintsRequestID(t *testing.T) {
	_, b := newTestBus(t)
	mustHandle(t, b, "math.add", "math", func(ctx context.Context, req addReq) (addResp, error) {
		return addResp{RequestID: RequestID(ctx)}, nil
	})
	resp, err := Call[addReq, addResp](testContext(t), b, "math.add", addReq{})
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if !strings.HasPrefix(resp.RequestID, "req-") || len(resp.RequestID) != len("req-")+36 {
		t.Errorf("handler saw request id %q, want req-<uuid>", resp.RequestID)
	}
}

func TestCallRemoteError(t *testing.T) {
	_, b := newTestBus(t)
	mustHandle(t, b, "servers.get", "servers", func(ctx context.Context, id string) (addResp, error) {
		if id == "missing" {
			return addResp{}, fmt.Errorf("lookup: %w", &RemoteError{Code: "not_found", Message: "server missing not found"})
		}
		return addResp{}, errors.New("disk on fire")
	})

	tests := []struct {
		id, code, msg string
	}{
		{"missing", "not_found", "server missing not found"},
		{"other", CodeInternal, "disk on fire"},
	}
	for _, tt := range tests {
		_, err := Call[string, addResp](testContext(t), b, "servers.get", tt.id)
		re, ok := errors.AsType[*RemoteError](err)
		if !ok {
			t.Fatalf("call %s: err = %v, want *RemoteError", tt.id, err)
		}
		if re.Code != tt.code || re.Message != tt.msg {
			t.Errorf("call %s: remote error = %+v, want code %q message %q", tt.id, re, tt.code, tt.msg)
		}
		if !strings.HasPrefix(err.Error(), "bus call servers.get: ") {
			t.Errorf("error %q lacks call context", err)
		}
	}
}

func TestCallHandlerPanic(t *testing.T) {
	_, b := newTestBus(t)
	mustHandle(t, b, "boom", "boom", func(ctx context.Context, n int) (int, error) {
		if n == 0 {
			panic("division by zero")
		}
		return 100 / n, nil
	})

	_, err := Call[int, int](testContext(t), b, "boom", 0)
	re, ok := errors.AsType[*RemoteError](err)
	if !ok {
		t.Fatalf("err = %v, want *RemoteError", err)
	}
	if re.Code != CodePanic || !strings.Contains(re.Message, "division by zero") {
		t.Errorf("remote error = %+v, want panic with message", re)
	}
	// The service survived the panic.
	got, err := Call[int, int](testContext(t), b, "boom", 4)
	if err != nil || got != 25 {
		t.Fatalf("call after panic = %d, %v; want 25, nil", got, err)
	}
}

func TestCallBadRequest(t *testing.T) {
	_, b := newTestBus(t)
	mustHandle(t, b, "typed", "typed", func(ctx context.Context, req addReq) (int, error) {
		return req.A, nil
	})
	_, err := Call[string, int](testContext(t), b, "typed", "not an object")
	re, ok := errors.AsType[*RemoteError](err)
	if !ok || re.Code != CodeBadRequest {
		t.Fatalf("err = %v, want remote error with code %s", err, CodeBadRequest)
	}
}

func TestCallNoResponders(t *testing.T) {
	_, b := newTestBus(t)
	start := time.Now()
	_, err := Call[int, int](testContext(t), b, "nobody.home", 1)
	if !errors.Is(err, ErrNoResponders) {
		t.Fatalf("err = %v, want ErrNoResponders", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("no-responders took %s; it should not wait for the timeout", d)
	}
}

func TestCallTimeout(t *testing.T) {
	_, b := newTestBus(t)
	handlerDeadline := make(chan bool, 1)
	handlerDone := make(chan error, 1)
	mustHandle(t, b, "slow", "slow", func(ctx context.Context, _ int) (int, error) {
		_, ok := ctx.Deadline()
		handlerDeadline <- ok
		<-ctx.Done()
		handlerDone <- ctx.Err()
		return 0, ctx.Err()
	})

	ctx, cancel := context.WithTimeout(testContext(t), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Call[int, int](ctx, b, "slow", 1)
	elapsed := time.Since(start)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTimeout matching context.DeadlineExceeded", err)
	}
	if elapsed < 150*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("call returned after %s, want about 200ms", elapsed)
	}
	if !receive(t, handlerDeadline, 5*time.Second, "handler start") {
		t.Error("handler context had no deadline")
	}
	if err := receive(t, handlerDone, 5*time.Second, "handler cancellation"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("handler context ended with %v, want deadline exceeded", err)
	}
}

func TestCallDefaultTimeout(t *testing.T) {
	s := startTestServer(t, ServerConfig{})
	b := connectTest(t, Config{URL: s.ClientURL(), CallTimeout: 150 * time.Millisecond})
	mustHandle(t, b, "slow", "slow", func(ctx context.Context, _ int) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	start := time.Now()
	_, err := Call[int, int](context.Background(), b, "slow", 1)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("call took %s, want about the 150ms default", d)
	}
}

func TestCallCancelled(t *testing.T) {
	_, b := newTestBus(t)
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	mustHandle(t, b, "slow", "slow", func(ctx context.Context, _ int) (int, error) {
		close(started)
		// Cancellation does not cross the wire, only the deadline does,
		// so the handler is released by the test.
		<-release
		return 0, nil
	})
	ctx, cancel := context.WithCancel(testContext(t))
	go func() {
		<-started
		cancel()
	}()
	_, err := Call[int, int](ctx, b, "slow", 1)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled and not ErrTimeout", err)
	}
}

func TestQueueGroupSharesLoad(t *testing.T) {
	s := startTestServer(t, ServerConfig{})
	var workers [2]*Bus
	counts := make(chan int, 100)
	for i := range workers {
		workers[i] = connectTest(t, Config{URL: s.ClientURL(), Name: fmt.Sprintf("worker-%d", i)})
		mustHandle(t, workers[i], "work", "workers", func(ctx context.Context, n int) (int, error) {
			counts <- i
			return n * 2, nil
		})
	}
	caller := connectTest(t, Config{URL: s.ClientURL(), Name: "caller"})

	const n = 60
	for i := range n {
		got, err := Call[int, int](testContext(t), caller, "work", i)
		if err != nil || got != 2*i {
			t.Fatalf("call %d = %d, %v", i, got, err)
		}
	}
	var per [2]int
	for range n {
		per[receive(t, counts, time.Second, "handler record")]++
	}
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("calls per worker = %v, want both to get some", per)
	}
	if per[0]+per[1] != n {
		t.Errorf("calls handled = %d, want %d (each call exactly once)", per[0]+per[1], n)
	}
}

func TestUnsubscribeWaitsForRunningHandler(t *testing.T) {
	_, b := newTestBus(t)
	started := make(chan struct{})
	release := make(chan struct{})
	sub := mustHandle(t, b, "slow", "slow", func(ctx context.Context, n int) (int, error) {
		close(started)
		<-release
		return n, nil
	})

	result := make(chan error, 1)
	go func() {
		_, err := Call[int, int](testContext(t), b, "slow", 7)
		result <- err
	}()
	receive(t, started, 5*time.Second, "handler start")

	unsubscribed := make(chan error, 1)
	go func() { unsubscribed <- sub.Unsubscribe() }()
	select {
	case <-unsubscribed:
		t.Fatal("Unsubscribe returned while a handler was still running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := receive(t, unsubscribed, 5*time.Second, "unsubscribe"); err != nil {
		t.Errorf("unsubscribe: %v", err)
	}
	if err := receive(t, result, 5*time.Second, "call result"); err != nil {
		t.Errorf("call accepted before unsubscribe failed: %v", err)
	}
	if _, err := Call[int, int](testContext(t), b, "slow", 1); !errors.Is(err, ErrNoResponders) {
		t.Errorf("call after unsubscribe: err = %v, want ErrNoResponders", err)
	}
}

func TestClosedBus(t *testing.T) {
	s := startTestServer(t, ServerConfig{})
	b, err := Connect(testContext(t), Config{URL: s.ClientURL(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Handle(b, "x", "", func(ctx context.Context, n int) (int, error) { return n, nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := Call[int, int](testContext(t), b, "x", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("call on closed bus: err = %v, want ErrClosed", err)
	}
	if _, err := Handle(b, "y", "", func(ctx context.Context, n int) (int, error) { return n, nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("handle on closed bus: err = %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}
