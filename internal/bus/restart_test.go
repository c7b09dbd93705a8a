package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestServerRestartUnderLoad restarts the embedded server on the same port
// and store while clients make calls and durable casts, and checks that
// calls recover and that no durable cast the bus accepted is lost.
func TestServerRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server; skipped in -short mode")
	}
	port := freePort(t)
	storeDir := t.TempDir()
	srv, err := StartServer(ServerConfig{Port: port, StoreDir: storeDir, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	url := srv.ClientURL()
	var srv2 *Server
	t.Cleanup(func() {
		// Clients close first (registered later), then whichever server
		// runs.
		srv.Shutdown()
		if srv2 != nil {
			srv2.Shutdown()
		}
	})

	worker := connectTest(t, Config{URL: url, Name: "worker"})
	caller := connectTest(t, Config{URL: url, Name: "caller"})
	consumer := connectTest(t, Config{URL: url, Name: "consumer"})
	caster := connectTest(t, Config{URL: url, Name: "caster"})

	mustHandle(t, worker, "echo", "echo", func(ctx context.Context, n int) (int, error) { return n, nil })

	// The durable worker refuses all work until the server has restarted,
	// so messages cast before the shutdown are still unacknowledged when
	// the server stops and must come back from the store.
	var restarted atomic.Bool
	var mu sync.Mutex
	delivered := map[string]int{} // guarded by mu
	newDelivery := make(chan struct{}, 1)
	if _, err := Consume(testContext(t), consumer, "restart.jobs", func(ctx context.Context, job buildJob) error {
		if !restarted.Load() {
			return errors.New("not yet")
		}
		mu.Lock()
		delivered[job.InstanceID]++
		mu.Unlock()
		select {
		case newDelivery <- struct{}{}:
		default:
		}
		return nil
	}, WithRetryDelay(50*time.Millisecond), WithAckWait(2*time.Second), WithConcurrency(4)); err != nil {
		t.Fatalf("consume: %v", err)
	}

	// Load: several goroutines calling continuously with short timeouts.
	var (
		successes  atomic.Int64
		failures   atomic.Int64
		slowest    atomic.Int64 // nanoseconds
		stopLoad   = make(chan struct{})
		loadDone   sync.WaitGroup
		callBudget = 500 * time.Millisecond
	)
	for g := range 4 {
		loadDone.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), callBudget)
				start := time.Now()
				got, err := Call[int, int](ctx, caller, "echo", g*1_000_000+i)
				cancel()
				if d := int64(time.Since(start)); d > slowest.Load() {
					slowest.Store(d) // racy max is fine for a bound
				}
				switch {
				case err == nil && got == g*1_000_000+i:
					successes.Add(1)
				case err == nil:
					t.Errorf("echo %d returned %d", g*1_000_000+i, got)
				default:
					failures.Add(1)
					time.Sleep(10 * time.Millisecond) // don't spin while the server is down
				}
			}
		})
	}
	stopLoadOnce := sync.OnceFunc(func() { close(stopLoad); loadDone.Wait() })
	t.Cleanup(stopLoadOnce)

	waitUntil(t, 10*time.Second, "calls before restart", func() bool { return successes.Load() >= 20 })

	// Durable casts accepted before the shutdown.
	var accepted []string
	for i := range 20 {
		id := fmt.Sprint("before-", i)
		if err := CastDurable(testContext(t), caster, "restart.jobs", buildJob{InstanceID: id}); err != nil {
			t.Fatalf("cast durable before shutdown: %v", err)
		}
		accepted = append(accepted, id)
	}

	srv.Shutdown()
	failuresAtShutdown := failures.Load()
	// Casts attempted while the server is down: those that report success
	// (buffered and stored after the reconnect) must be delivered too.
	castDuringOutage := make(chan []string, 1)
	go func() {
		var ok []string
		for i := range 5 {
			id := fmt.Sprint("outage-", i)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			if CastDurable(ctx, caster, "restart.jobs", buildJob{InstanceID: id}) == nil {
				ok = append(ok, id)
			}
			cancel()
		}
		castDuringOutage <- ok
	}()
	time.Sleep(500 * time.Millisecond) // keep the bus down for a while

	srv2, err = StartServer(ServerConfig{Port: port, StoreDir: storeDir, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("restart server: %v", err)
	}
	restarted.Store(true)
	restartedAt := successes.Load()

	waitUntil(t, 10*time.Second, "calls to succeed after restart", func() bool {
		return successes.Load() >= restartedAt+20
	})
	stopLoadOnce()
	if d := time.Duration(slowest.Load()); d > callBudget+2*time.Second {
		t.Errorf("slowest call took %s; calls must fail within their deadline during an outage", d)
	}
	t.Logf("calls: %d succeeded, %d failed (%d before shutdown)", successes.Load(), failures.Load(), failuresAtShutdown)

	accepted = append(accepted, receive(t, castDuringOutage, 10*time.Second, "outage casts")...)
	for i := range 5 {
		id := fmt.Sprint("after-", i)
		if err := CastDurable(testContext(t), caster, "restart.jobs", buildJob{InstanceID: id}); err != nil {
			t.Fatalf("cast durable after restart: %v", err)
		}
		accepted = append(accepted, id)
	}

	missing := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var m []string
		for _, id := range accepted {
			if delivered[id] == 0 {
				m = append(m, id)
			}
		}
		return m
	}
	deadline := time.After(15 * time.Second)
	for len(missing()) > 0 {
		select {
		case <-newDelivery:
		case <-deadline:
			t.Fatalf("durable casts lost across restart: %v", missing())
		}
	}
	mu.Lock()
	t.Logf("durable: %d accepted, %d distinct delivered", len(accepted), len(delivered))
	mu.Unlock()
}

// waitUntil polls cond until it holds or d passes, for outcomes that have
// no event to wait on (counters updated by load goroutines).
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDurableSurvivesStoreLoss restarts the server with an empty store:
// messages in the old store are gone, but casters and workers must set the
// stream and consumer up again by themselves so new work flows.
func TestDurableSurvivesStoreLoss(t *testing.T) {
	port := freePort(t)
	srv, err := StartServer(ServerConfig{Port: port, StoreDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	var srv2 *Server
	t.Cleanup(func() {
		srv.Shutdown()
		if srv2 != nil {
			srv2.Shutdown()
		}
	})
	caster := connectTest(t, Config{URL: srv.ClientURL(), Name: "caster"})
	worker := connectTest(t, Config{URL: srv.ClientURL(), Name: "worker"})
	got := make(chan string, 10)
	if _, err := Consume(testContext(t), worker, "store.jobs", func(ctx context.Context, job buildJob) error {
		got <- job.InstanceID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := CastDurable(testContext(t), caster, "store.jobs", buildJob{InstanceID: "first"}); err != nil {
		t.Fatal(err)
	}
	if id := receive(t, got, 5*time.Second, "first job"); id != "first" {
		t.Fatalf("got %q", id)
	}

	srv.Shutdown()
	srv2, err = StartServer(ServerConfig{Port: port, StoreDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("restart server: %v", err)
	}
	waitUntil(t, 10*time.Second, "clients to reconnect", func() bool {
		return caster.Connected() && worker.Connected()
	})
	if err := CastDurable(testContext(t), caster, "store.jobs", buildJob{InstanceID: "second"}); err != nil {
		t.Fatalf("cast durable after store loss: %v", err)
	}
	if id := receive(t, got, 10*time.Second, "job after store loss"); id != "second" {
		t.Fatalf("got %q", id)
	}
}
