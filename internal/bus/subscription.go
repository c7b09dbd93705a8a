package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Option tunes a subscription made by [Handle], [Subscribe] or [Consume].
// Options that do not apply to a kind of subscription are ignored, as
// documented on each option.
type Option func(*subOptions)

type subOptions struct {
	concurrency int
	ackWait     time.Duration
	retryDelay  time.Duration
	maxDeliver  int
}

// WithConcurrency sets how many messages one subscription handles at once.
// With 1, handlers run one at a time in arrival order, which events need
// when later ones supersede earlier ones. Defaults: 16 for [Handle], 1 for
// [Subscribe] and [Consume].
func WithConcurrency(n int) Option {
	return func(o *subOptions) {
		if n > 0 {
			o.concurrency = n
		}
	}
}

// WithAckWait sets how long JetStream waits for a [Consume] handler before
// redelivering the message to another worker (default 30s). Handlers that
// run longer are kept alive automatically, so this only bounds how quickly
// the work of a crashed worker is picked up again.
func WithAckWait(d time.Duration) Option {
	return func(o *subOptions) {
		if d > 0 {
			o.ackWait = d
		}
	}
}

// WithRetryDelay sets the delay before the first redelivery of a message
// whose [Consume] handler failed (default 1s); it doubles on each further
// failure up to one minute, so a broken dependency is not hammered.
func WithRetryDelay(d time.Duration) Option {
	return func(o *subOptions) {
		if d > 0 {
			o.retryDelay = d
		}
	}
}

// WithMaxDeliver limits how often a [Consume] message is delivered
// (default unlimited, because dropping durable work silently is worse than
// retrying it). A message that exhausts its deliveries stays in the stream
// and is logged, for an operator to inspect.
func WithMaxDeliver(n int) Option {
	return func(o *subOptions) {
		if n > 0 {
			o.maxDeliver = n
		}
	}
}

func buildOptions(defaultConcurrency int, opts []Option) subOptions {
	o := subOptions{
		concurrency: defaultConcurrency,
		ackWait:     30 * time.Second,
		retryDelay:  time.Second,
		maxDeliver:  -1,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Subscription is a registered handler. Keep it to stop the handler with
// Unsubscribe; [Bus.Close] stops all subscriptions of a bus.
type Subscription struct {
	bus     *Bus
	subject string
	kind    string // "handle", "subscribe" or "consume", for logs
	log     *slog.Logger

	// ctx is the parent of handler contexts; cancelled when handlers
	// outlive the drain timeout.
	ctx    context.Context
	cancel context.CancelFunc
	// sem bounds concurrent handlers; nil means run inline, in order.
	sem chan struct{}
	// stop stops delivery; transportDone is closed once the transport
	// will invoke no more callbacks.
	stop          func() error
	transportDone <-chan struct{}

	mu      sync.Mutex
	active  int           // guarded by mu; handlers running
	closing bool          // guarded by mu
	idle    chan struct{} // guarded by mu; closed when closing && active == 0

	unsubOnce sync.Once
	unsubErr  error
}

func newSubscription(b *Bus, kind, subject string, o subOptions) *Subscription {
	s := &Subscription{
		bus:     b,
		subject: subject,
		kind:    kind,
		log:     b.log.With("subject", subject, "kind", kind),
		idle:    make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(b.ctx)
	if o.concurrency > 1 {
		s.sem = make(chan struct{}, o.concurrency)
	}
	return s
}

// Subject returns the subject the subscription listens on.
func (s *Subscription) Subject() string { return s.subject }

// Unsubscribe stops delivery, lets messages already received finish, and
// waits up to [Config.DrainTimeout] for running handlers before cancelling
// their contexts. Stopping gracefully means a rolling restart of a worker
// neither drops calls it accepted nor duplicates durable work needlessly.
// Do not call it from the subscription's own handler, which it would wait
// for. Later calls return the first result.
func (s *Subscription) Unsubscribe() error {
	s.unsubOnce.Do(func() {
		defer s.bus.untrack(s)
		defer s.cancel()
		wait, cancelWait := context.WithTimeout(context.Background(), s.bus.cfg.DrainTimeout)
		defer cancelWait()

		var errs []error
		if err := s.stop(); err != nil {
			errs = append(errs, err)
		}
		select {
		case <-s.transportDone:
		case <-wait.Done():
			errs = append(errs, fmt.Errorf("transport still draining after %s", s.bus.cfg.DrainTimeout))
		}

		s.mu.Lock()
		s.closing = true
		if s.active == 0 {
			close(s.idle)
		}
		s.mu.Unlock()
		select {
		case <-s.idle:
		case <-wait.Done():
			errs = append(errs, fmt.Errorf("handlers still running after %s", s.bus.cfg.DrainTimeout))
		}
		if len(errs) > 0 {
			s.unsubErr = fmt.Errorf("bus unsubscribe %s: %w", s.subject, errors.Join(errs...))
		}
	})
	return s.unsubErr
}

// dispatch runs fn for one received message, inline or on a goroutine
// bounded by sem. It returns false if the subscription is closing, in
// which case fn did not run.
func (s *Subscription) dispatch(fn func()) bool {
	if !s.begin() {
		return false
	}
	if s.sem == nil {
		defer s.done()
		fn()
		return true
	}
	s.sem <- struct{}{}
	go func() {
		defer s.done()
		defer func() { <-s.sem }()
		fn()
	}()
	return true
}

// begin counts a handler as running, unless the subscription is closing.
func (s *Subscription) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.active++
	return true
}

// done ends what begin started.
func (s *Subscription) done() {
	s.mu.Lock()
	s.active--
	if s.closing && s.active == 0 {
		close(s.idle)
	}
	s.mu.Unlock()
}

// safely runs fn and turns a panic into a *RemoteError with CodePanic, so a
// handler bug fails one message instead of the whole service.
func safely(log *slog.Logger, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("bus handler panicked", "panic", r, "stack", string(debug.Stack()))
			err = &RemoteError{Code: CodePanic, Message: fmt.Sprintf("handler panicked: %v", r)}
		}
	}()
	return fn()
}
