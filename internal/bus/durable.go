package bus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Durable messages live in one JetStream work-queue stream. A work queue
// deletes a message once a worker acks it, so the stream only holds
// outstanding work; it requires that no two consumers' subjects overlap,
// which holds because each durable subject has exactly one consumer that all
// its workers share.
const (
	// DurableStream is the JetStream stream holding durable messages.
	DurableStream = "NIMBUS_DURABLE"
	// DurableSubjectPrefix is prepended to the subject of [CastDurable]
	// so durable traffic never mixes with calls and events on the same
	// subject, and so the stream does not capture those.
	DurableSubjectPrefix = "nimbus.durable."

	// maxRetryDelay caps the exponential redelivery backoff.
	maxRetryDelay = time.Minute
	// duplicateWindow is how long JetStream remembers message ids, making
	// CastDurable's internal retry idempotent.
	duplicateWindow = 2 * time.Minute
	// ackTimeout bounds acknowledging a finished message.
	ackTimeout = 5 * time.Second
)

// CastDurable sends msg to the [Consume] workers of subject with
// at-least-once delivery, for work that must not be lost (e.g. "build
// instance X"). It returns once the bus has stored msg (a nil error means
// it will be delivered, even if no worker runs yet or the server restarts
// with the same [ServerConfig.StoreDir]). Workers may see a message more
// than once, so handlers must be idempotent.
//
// It waits up to ctx's deadline, or [Config.CallTimeout], for the store to
// confirm; on timeout the error matches [ErrTimeout] and msg may or may not
// have been stored.
func CastDurable[T any](ctx context.Context, b *Bus, subject string, msg T) error {
	data, err := encode(msg)
	if err != nil {
		return fmt.Errorf("bus cast durable %s: %w", subject, err)
	}
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	m := b.newMsg(ctx, DurableSubjectPrefix+subject, data, false)
	// One id for all attempts so JetStream drops a duplicate if an attempt
	// that we consider failed was in fact stored.
	msgID := uuid.NewString()
	for attempt := 1; ; attempt++ {
		if err := b.ensureStream(ctx); err != nil {
			return fmt.Errorf("bus cast durable %s: %w", subject, b.translate(ctx, err))
		}
		_, err := b.js.PublishMsg(ctx, m, jetstream.WithMsgID(msgID))
		if err == nil {
			return nil
		}
		// The stream may have vanished (a server restarted without its
		// store); create it again once.
		if errors.Is(err, jetstream.ErrNoStreamResponse) && attempt == 1 && ctx.Err() == nil {
			b.forgetStream()
			continue
		}
		return fmt.Errorf("bus cast durable %s: %w", subject, b.translate(ctx, err))
	}
}

// Consume registers h as a worker for messages sent to subject with
// [CastDurable]. All workers of a subject, on any host, share one durable
// JetStream consumer, so each message goes to one worker, and messages sent
// while no worker ran are delivered when one starts.
//
// A message is acknowledged (and removed) when h returns nil. When h
// returns an error or panics the message is redelivered after a backoff
// ([WithRetryDelay], [WithMaxDeliver]); return [Permanent](err) to drop it
// instead. While h runs the bus tells JetStream it is still working, so
// long jobs are not redelivered to another worker; if the worker dies the
// message is redelivered after [WithAckWait].
//
// ctx bounds the setup only. subject must not overlap the subject of
// another Consume (e.g. "compute.*" and "compute.build"), because JetStream
// work queues allow a message to belong to only one consumer.
func Consume[T any](ctx context.Context, b *Bus, subject string, h func(ctx context.Context, msg T) error, opts ...Option) (*Subscription, error) {
	o := buildOptions(1, opts)
	s := newSubscription(b, "consume", subject, o)
	s.sem = nil // the worker bounds concurrency with its own slots
	fail := func(err error) (*Subscription, error) {
		s.cancel()
		return nil, fmt.Errorf("bus consume %s: %w", subject, b.translate(ctx, err))
	}
	if err := b.ensureStream(ctx); err != nil {
		return fail(err)
	}
	consumerCfg := jetstream.ConsumerConfig{
		Durable:       consumerName(subject),
		Description:   "nimbus workers for " + subject,
		FilterSubject: DurableSubjectPrefix + subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.ackWait,
		MaxDeliver:    o.maxDeliver,
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, DurableStream, consumerCfg)
	if err != nil {
		return fail(fmt.Errorf("create consumer: %w", err))
	}

	serve := func(m jetstream.Msg) {
		ctx, cancel := handlerContext(s.ctx, m.Headers())
		defer cancel()
		delivery := uint64(1)
		if meta, err := m.Metadata(); err == nil {
			delivery = meta.NumDelivered
		}
		log := s.log.With("request_id", RequestID(ctx), "delivery", delivery)

		msg, _, err := decode[T](m.Data())
		if err != nil {
			// Redelivering cannot make it decodable.
			log.Error("bus drop undecodable durable message", "err", err)
			if err := m.TermWithReason("undecodable"); err != nil {
				log.Warn("bus term message", "err", err)
			}
			return
		}

		stopKeepAlive := keepAlive(m, o.ackWait)
		err = safely(log, func() error { return h(ctx, msg) })
		stopKeepAlive()

		switch {
		case err == nil:
			// Wait for the server to confirm the ack: after a confirmed
			// ack the message is gone and cannot be redelivered.
			actx, acancel := context.WithTimeout(context.Background(), ackTimeout)
			defer acancel()
			if err := m.DoubleAck(actx); err != nil {
				log.Warn("bus ack failed; message will be redelivered", "err", err)
			}
		case isPermanent(err):
			log.Error("bus durable handler failed permanently; dropping message", "err", err)
			if err := m.TermWithReason(err.Error()); err != nil {
				log.Warn("bus term message", "err", err)
			}
		default:
			if o.maxDeliver > 0 && delivery >= uint64(o.maxDeliver) {
				log.Error("bus durable handler failed; giving up after max deliveries", "err", err)
			} else {
				logHandlerError(log, err)
			}
			if err := m.NakWithDelay(retryDelay(o.retryDelay, delivery)); err != nil {
				log.Warn("bus nak failed; message will be redelivered after ack wait", "err", err)
			}
		}
	}

	loopCtx, stopLoop := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	s.stop = func() error {
		stopLoop()
		return nil
	}
	s.transportDone = loopDone
	if err := b.track(s); err != nil {
		close(loopDone)
		_ = s.Unsubscribe()
		return nil, fmt.Errorf("bus consume %s: %w", subject, err)
	}
	go func() {
		defer close(loopDone)
		w := &worker{bus: b, sub: s, cfg: consumerCfg, cons: cons, slots: make(chan struct{}, o.concurrency), serve: serve}
		w.run(loopCtx)
	}()
	return s, nil
}

// Pull parameters of the worker loop. Short pulls with heartbeats mean a
// worker notices within a couple of seconds that a pull was lost, e.g. to
// a server restart, and pulls again.
const (
	fetchWait      = 5 * time.Second
	fetchHeartbeat = time.Second
	maxFetchRetry  = 5 * time.Second
)

// worker is the pull loop behind Consume. It fetches only as many messages
// as it has free handler slots, so no message waits in a busy worker's
// buffer while another worker idles, and its ack timer does not run before
// a handler has it.
//
// It uses Fetch rather than jetstream's Consume because Consume in nats.go
// v1.55.0 can skip its next pull when a message is handled while the
// previous pull request is still being sent, stalling the worker until a
// heartbeat is missed.
type worker struct {
	bus   *Bus
	sub   *Subscription
	cfg   jetstream.ConsumerConfig
	cons  jetstream.Consumer // replaced when the consumer must be re-created
	slots chan struct{}      // one token per running handler
	serve func(jetstream.Msg)
}

func (w *worker) run(ctx context.Context) {
	// A pull sent before a reconnect is lost with the old connection;
	// hearing of the reconnect lets the loop pull again at once instead of
	// waiting for missed heartbeats.
	reconnected := w.bus.nc.StatusChanged(nats.CONNECTED)
	defer w.bus.nc.RemoveStatusListener(reconnected)

	retry := time.Duration(0)
	missing := 0 // consecutive fetches that found no consumer
	for ctx.Err() == nil {
		n := w.acquireSlots(ctx)
		if n == 0 {
			return
		}
		err := w.fetch(ctx, n, reconnected)
		if err == nil || ctx.Err() != nil {
			retry, missing = 0, 0
			continue
		}

		retry = min(max(2*retry, w.bus.cfg.ReconnectWait), maxFetchRetry)
		w.sub.log.Debug("bus fetch failed", "err", err, "retry_in", retry)
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
			errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			missing++
		}
		// The consumer is gone, e.g. the server lost its store: create
		// it again so casts are not stranded. A server that is shutting
		// down also answers "no responders" for a moment, hence the
		// repeated evidence and the connection check before acting.
		if missing >= 3 && w.bus.nc.IsConnected() {
			w.recreate(ctx)
			missing = 0
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

// acquireSlots waits for one free handler slot and takes any others that
// are free too; it returns how many it took, 0 if ctx ended first.
func (w *worker) acquireSlots(ctx context.Context) int {
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < cap(w.slots) {
		select {
		case w.slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

// errRepull cancels a fetch whose pull request died with a connection.
var errRepull = errors.New("reconnected")

// fetch pulls up to n messages and starts a handler for each; every slot
// not handed to a handler is released before it returns. A reconnect ends
// the fetch early without error.
func (w *worker) fetch(ctx context.Context, n int, reconnected <-chan nats.Status) error {
	defer func() {
		for ; n > 0; n-- {
			<-w.slots
		}
	}()
	fctx, cancelTimeout := context.WithTimeout(ctx, fetchWait)
	defer cancelTimeout()
	fctx, cancel := context.WithCancelCause(fctx)
	defer cancel(nil)
	go func() {
		select {
		case <-reconnected:
			cancel(errRepull)
		case <-fctx.Done():
		}
	}()

	batch, err := w.cons.Fetch(n, jetstream.FetchContext(fctx), jetstream.FetchHeartbeat(fetchHeartbeat))
	if err != nil {
		return err
	}
	for m := range batch.Messages() {
		if !w.sub.begin() {
			// Stopping: hand it back at once for another worker.
			_ = m.Nak()
			continue
		}
		n--
		go func() {
			defer w.sub.done()
			defer func() { <-w.slots }()
			w.serve(m)
		}()
	}
	err = batch.Error()
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(context.Cause(fctx), errRepull) {
		return nil
	}
	return err
}

// recreate re-creates the stream and consumer after the server lost them.
func (w *worker) recreate(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	w.bus.forgetStream()
	if err := w.bus.ensureStream(ctx); err != nil {
		w.sub.log.Debug("bus re-create stream", "err", err)
		return
	}
	cons, err := w.bus.js.CreateOrUpdateConsumer(ctx, DurableStream, w.cfg)
	if err != nil {
		w.sub.log.Debug("bus re-create consumer", "err", err)
		return
	}
	w.cons = cons
}

// keepAlive tells JetStream every half ack wait that m is still being
// worked on, until the returned function is called.
func keepAlive(m jetstream.Msg, ackWait time.Duration) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(ackWait / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// retryDelay is base doubled for every delivery after the first, capped.
func retryDelay(base time.Duration, delivery uint64) time.Duration {
	d := base
	for i := uint64(1); i < delivery && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// consumerName derives the durable consumer name from subject: readable,
// restricted to characters JetStream allows in names, and made unique by
// a hash because the character mapping alone could collide.
func consumerName(subject string) string {
	readable := strings.NewReplacer(".", "_", "*", "any", ">", "all", " ", "", "/", "", "\\", "").Replace(subject)
	h := fnv.New32a()
	h.Write([]byte(subject))
	return fmt.Sprintf("nimbus_%s_%08x", readable, h.Sum32())
}

// ensureStream creates or updates the durable stream once per Bus, so that
// whoever comes first, caster or worker, sets it up.
func (b *Bus) ensureStream(ctx context.Context) error {
	b.streamMu.Lock()
	defer b.streamMu.Unlock()
	if b.streamReady {
		return nil
	}
	_, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DurableStream,
		Description: "Nimbus durable casts (work queue)",
		Subjects:    []string{DurableSubjectPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.DurableReplicas,
		Duplicates:  duplicateWindow,
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", DurableStream, err)
	}
	b.streamReady = true
	return nil
}

// forgetStream makes the next durable operation check the stream again.
func (b *Bus) forgetStream() {
	b.streamMu.Lock()
	b.streamReady = false
	b.streamMu.Unlock()
}
