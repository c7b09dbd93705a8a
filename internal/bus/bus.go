package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults for [Config]; chosen for a control plane where a bus restart
// should cost a service well under a second of unavailability.
const (
	DefaultCallTimeout   = 30 * time.Second
	DefaultReconnectWait = 250 * time.Millisecond
	DefaultDrainTimeout  = 10 * time.Second
)

// Config configures a client connection made by [Connect].
type Config struct {
	// URL of the NATS server(s), e.g. "nats://10.0.0.1:4222"; several may
	// be given comma-separated for a cluster. Ignored when Server is set.
	URL string
	// Server, when set, connects in-process to an embedded server instead
	// of dialling URL. It is needed for a server started with Port -1.
	// An in-process connection cannot follow a restart: the new Server is
	// a different object, so such clients are for tests and single-process
	// deployments that restart bus and services together.
	Server *Server
	// Name identifies the service (e.g. "nova-compute@host1") in server
	// connection lists and in the [HeaderSender] of every message.
	Name string
	// Logger receives connection events and handler failures; nil means
	// slog.Default().
	Logger *slog.Logger
	// CallTimeout bounds [Call] and [CastDurable] when ctx has no deadline,
	// so a forgotten deadline cannot hang a caller forever; 0 means
	// DefaultCallTimeout.
	CallTimeout time.Duration
	// ReconnectWait is the pause between reconnect attempts, and between
	// initial connect attempts in Connect; 0 means DefaultReconnectWait.
	// Clients always reconnect without limit: a service that gives up on
	// the bus is useless, and operators expect it to recover by itself.
	ReconnectWait time.Duration
	// DrainTimeout bounds how long Close and Subscription.Unsubscribe wait
	// for running handlers before cancelling their contexts; 0 means
	// DefaultDrainTimeout.
	DrainTimeout time.Duration
	// DurableReplicas is how many servers of a cluster keep each durable
	// message; 0 means 1, which is all a single embedded server can do.
	// Use 3 on a three-node cluster so durable work survives losing a node.
	DurableReplicas int
}

// Bus is a connection to the message bus. It is safe for concurrent use;
// a service normally holds one for its lifetime.
type Bus struct {
	cfg Config
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream

	// ctx is the parent of every handler context; cancelled by Close after
	// the drain timeout so stuck handlers are told to give up.
	ctx    context.Context
	cancel context.CancelFunc
	// connClosed is closed when the NATS connection has closed for good.
	connClosed chan struct{}

	mu      sync.Mutex
	subs    map[*Subscription]struct{} // guarded by mu
	closing bool                       // guarded by mu

	streamMu    sync.Mutex
	streamReady bool // guarded by streamMu; the durable stream exists

	closeOnce sync.Once
	closeErr  error
}

// Connect connects to the bus and returns once connected. It retries until
// ctx is done, because services and the bus start in no particular order;
// pass a ctx with a deadline to bound the wait.
func Connect(ctx context.Context, cfg Config) (*Bus, error) {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.ReconnectWait <= 0 {
		cfg.ReconnectWait = DefaultReconnectWait
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.DurableReplicas <= 0 {
		cfg.DurableReplicas = 1
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "bus")
	if cfg.Name != "" {
		log = log.With("client", cfg.Name)
	}
	target := cfg.URL
	if cfg.Server != nil {
		target = "in-process"
	} else if target == "" {
		return nil, errors.New("bus connect: no URL")
	}

	b := &Bus{
		cfg:        cfg,
		log:        log,
		connClosed: make(chan struct{}),
		subs:       make(map[*Subscription]struct{}),
	}
	var closeConnOnce sync.Once
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.ReconnectJitter(cfg.ReconnectWait/2, cfg.ReconnectWait),
		// Notice a server that vanished without closing the connection
		// (host crash, partition) within half a minute, not minutes.
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("bus disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("bus reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			closeConnOnce.Do(func() { close(b.connClosed) })
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("bus async error", "subject", subject, "err", err)
		}),
	}
	if cfg.Server != nil {
		opts = append(opts, nats.InProcessServer(cfg.Server.ns))
	}

	for {
		attempt := opts
		if deadline, ok := ctx.Deadline(); ok {
			if d := time.Until(deadline); d > 0 && d < nats.DefaultTimeout {
				attempt = append(attempt[:len(attempt):len(attempt)], nats.Timeout(d))
			}
		}
		nc, err := nats.Connect(cfg.URL, attempt...)
		if err == nil {
			b.nc = nc
			break
		}
		log.Warn("bus connect failed, retrying", "target", target, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bus connect %s: %w (last error: %w)", target, ctx.Err(), err)
		case <-time.After(cfg.ReconnectWait):
		}
	}

	js, err := jetstream.New(b.nc)
	if err != nil {
		b.nc.Close()
		return nil, fmt.Errorf("bus connect %s: jetstream: %w", target, err)
	}
	b.js = js
	b.ctx, b.cancel = context.WithCancel(context.Background())
	log.Debug("bus connected", "url", b.nc.ConnectedUrlRedacted())
	return b, nil
}

// Close stops all subscriptions, waits up to [Config.DrainTimeout] for
// running handlers, flushes pending publishes and closes the connection. A
// graceful close avoids losing casts that are still in the client's buffer.
// Later calls return the first result.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		subs := make([]*Subscription, 0, len(b.subs))
		for s := range b.subs {
			subs = append(subs, s)
		}
		b.mu.Unlock()

		var wg sync.WaitGroup
		errs := make([]error, len(subs))
		for i, s := range subs {
			wg.Go(func() { errs[i] = s.Unsubscribe() })
		}
		wg.Wait()
		b.cancel()

		if err := b.nc.Drain(); err != nil {
			// Drain refuses while disconnected and closes the
			// connection instead; nothing buffered could be sent anyway.
			if !errors.Is(err, nats.ErrConnectionReconnecting) && !errors.Is(err, nats.ErrConnectionClosed) {
				errs = append(errs, fmt.Errorf("drain: %w", err))
			}
		}
		select {
		case <-b.connClosed:
		case <-time.After(b.cfg.DrainTimeout):
			b.nc.Close()
			errs = append(errs, errors.New("drain: timed out"))
		}
		if err := errors.Join(errs...); err != nil {
			b.closeErr = fmt.Errorf("bus close: %w", err)
		}
	})
	return b.closeErr
}

// Connected reports whether the bus currently has a live connection to a
// server; health checks use it.
func (b *Bus) Connected() bool {
	return b.nc.IsConnected()
}

// callContext applies CallTimeout when ctx has no deadline.
func (b *Bus) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, b.cfg.CallTimeout)
}

// translate maps NATS errors to this package's sentinels, so callers never
// need to import nats.go to inspect errors.
func (b *Bus) translate(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return ErrNoResponders
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ErrTimeout
		}
		return ctx.Err()
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining):
		return ErrClosed
	}
	return err
}

// track registers s so Close stops it; it fails once Close has begun.
func (b *Bus) track(s *Subscription) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return ErrClosed
	}
	b.subs[s] = struct{}{}
	return nil
}

func (b *Bus) untrack(s *Subscription) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}
