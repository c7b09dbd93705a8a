package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Cast sends msg to subject without waiting for anyone, for commands whose
// loss is acceptable or detected elsewhere (e.g. "refresh your cache").
// Receivers are [Handle] handlers (the response is discarded) or [Subscribe]
// handlers, normally in a queue group so one worker acts on it. It is a
// plain NATS publish: if nobody listens, or the client is disconnected for
// longer than its reconnect buffer lasts, msg is lost. Use [CastDurable]
// when it must not be.
func Cast[T any](ctx context.Context, b *Bus, subject string, msg T) error {
	if err := b.publish(ctx, subject, msg); err != nil {
		return fmt.Errorf("bus cast %s: %w", subject, err)
	}
	return nil
}

// Publish sends the event ev to every [Subscribe] handler of subject (and to one
// member of each queue group), for notifications such as "instance
// changed state". Like [Cast] it is fire-and-forget: subscribers that are
// not connected miss the event.
func Publish[T any](ctx context.Context, b *Bus, subject string, ev T) error {
	if err := b.publish(ctx, subject, ev); err != nil {
		return fmt.Errorf("bus publish %s: %w", subject, err)
	}
	return nil
}

func (b *Bus) publish(ctx context.Context, subject string, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := encode(v)
	if err != nil {
		return err
	}
	if err := b.nc.PublishMsg(b.newMsg(ctx, subject, data, false)); err != nil {
		return b.translate(ctx, err)
	}
	return nil
}

// Subscribe registers h for messages sent to subject with [Publish] or
// [Cast]. With an empty queue every subscriber gets every message (event
// fan-out); subscribers sharing a non-empty queue split the messages
// between them (a worker pool for casts). subject may use NATS wildcards.
//
// h runs with a context carrying the sender's request id. Its error is
// logged, as there is nobody to return it to; a panic is recovered and
// logged. Handlers run one at a time in arrival order unless
// [WithConcurrency] says otherwise.
func Subscribe[T any](b *Bus, subject, queue string, h func(ctx context.Context, msg T) error, opts ...Option) (*Subscription, error) {
	s := newSubscription(b, "subscribe", subject, buildOptions(1, opts))
	serve := func(m *nats.Msg) {
		ctx, cancel := handlerContext(s.ctx, m.Header)
		defer cancel()
		log := s.log.With("request_id", RequestID(ctx), "msg_subject", m.Subject)
		msg, _, err := decode[T](m.Data)
		if err != nil {
			log.Warn("bus drop undecodable message", "err", err)
			return
		}
		logHandlerError(log, safely(log, func() error { return h(ctx, msg) }))
	}
	if err := b.subscribeCore(s, queue, serve); err != nil {
		return nil, fmt.Errorf("bus subscribe %s: %w", subject, err)
	}
	return s, nil
}
