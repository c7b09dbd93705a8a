package bus

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/google/uuid"
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
	fail := func(err error) (*Subscription, error) {
		s.cancel()
		return nil, fmt.Errorf("bus consume %s: %w", subject, b.translate(ctx, err))
	}
	if err := b.ensureStream(ctx); err != nil {
		return fail(err)
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, DurableStream, jetstream.ConsumerConfig{
		Durable:       consumerName(subject),
		Description:   "nimbus workers for " + subject,
		FilterSubject: DurableSubjectPrefix + subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.ackWait,
		MaxDeliver:    o.maxDeliver,
	})
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

	cc, err := cons.Consume(func(m jetstream.Msg) {
		if !s.dispatch(func() { serve(m) }) {
			// Stopping: hand it back at once so another worker takes it.
			_ = m.Nak()
		}
	},
		// Fetch no more than we can work on, so messages do not wait in
		// this worker's buffer while another worker is idle.
		jetstream.PullMaxMessages(o.concurrency),
		// Short pulls so a worker recovers quickly after a server
		// restart even if it missed the reconnect.
		jetstream.PullExpiry(5*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			s.log.Debug("bus consume", "err", err)
		}),
	)
	if err != nil {
		return fail(fmt.Errorf("start consuming: %w", err))
	}
	s.stop = func() error {
		cc.Drain()
		return nil
	}
	s.transportDone = cc.Closed()
	if err := b.track(s); err != nil {
		_ = s.Unsubscribe()
		return nil, fmt.Errorf("bus consume %s: %w", subject, err)
	}
	return s, nil
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
