package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
)

// Call sends req to the handler registered for subject with [Handle] and
// waits for its reply. It is the bus's RPC: services use it when they need
// an answer (e.g. the API asking the scheduler for a host).
//
// The timeout is ctx's deadline, or [Config.CallTimeout] if ctx has none;
// the handler's context gets the same deadline and the request id of ctx.
// Cancelling ctx early returns at once but is not sent to the handler,
// which stops at the deadline; NATS has no cheap way to cancel a request.
// Errors, all wrapped with the subject:
//   - [*RemoteError] (use errors.As) when the handler failed or panicked;
//   - [ErrNoResponders] when no handler is subscribed;
//   - [ErrTimeout], which also matches context.DeadlineExceeded, when no
//     reply came in time; context.Canceled if ctx was cancelled;
//   - [ErrClosed] when b is closed.
//
// While the client is disconnected the request is buffered and sent on
// reconnect, so a call survives a short server restart if its deadline
// allows; otherwise it fails with one of the errors above.
func Call[Req, Resp any](ctx context.Context, b *Bus, subject string, req Req) (Resp, error) {
	var zero Resp
	data, err := encode(req)
	if err != nil {
		return zero, fmt.Errorf("bus call %s: %w", subject, err)
	}
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	reply, err := b.nc.RequestMsgWithContext(ctx, b.newMsg(ctx, subject, data, true))
	if err != nil {
		return zero, fmt.Errorf("bus call %s: %w", subject, b.translate(ctx, err))
	}
	resp, remote, err := decode[Resp](reply.Data)
	if err != nil {
		return zero, fmt.Errorf("bus call %s: reply: %w", subject, err)
	}
	if remote != nil {
		// An error that raced our own deadline is most likely the
		// handler giving up at the same deadline; report the timeout.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return zero, fmt.Errorf("bus call %s: %w", subject, ErrTimeout)
		}
		return zero, fmt.Errorf("bus call %s: %w", subject, remote)
	}
	return resp, nil
}

// Handle registers h to answer [Call]s on subject. Handlers registered with
// the same non-empty queue share the calls, each call going to one of them,
// which is how a service scales out; an empty queue means every handler
// gets every call (rarely what you want for RPC).
//
// h runs with a context carrying the caller's request id and deadline; it
// is also cancelled if h is still running when Unsubscribe or Close give up
// waiting for it. An error returned by h
// reaches the caller as a [*RemoteError]: return a *RemoteError to choose
// its Code, anything else becomes [CodeInternal]. A panic in h is recovered
// and reaches the caller as CodePanic. Messages sent with [Cast] to subject
// run h too, and the response is discarded.
//
// Handle returns once the server knows about the subscription (when
// connected), so a Call made afterwards finds it. Up to 16 calls run at
// once by default; see [WithConcurrency].
func Handle[Req, Resp any](b *Bus, subject, queue string, h func(ctx context.Context, req Req) (Resp, error), opts ...Option) (*Subscription, error) {
	s := newSubscription(b, "handle", subject, buildOptions(16, opts))
	serve := func(m *nats.Msg) {
		ctx, cancel := handlerContext(s.ctx, m.Header)
		defer cancel()
		log := s.log.With("request_id", RequestID(ctx))

		var resp Resp
		req, _, err := decode[Req](m.Data)
		if err != nil {
			err = &RemoteError{Code: CodeBadRequest, Message: err.Error()}
		} else {
			err = safely(log, func() error {
				var herr error
				resp, herr = h(ctx, req)
				return herr
			})
		}
		logHandlerError(log, err)
		if m.Reply == "" {
			return
		}
		// The handler gave up because the caller's deadline passed; the
		// caller has stopped waiting and reports its own timeout, so a
		// reply would only race it.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
			return
		}

		reply := nats.NewMsg(m.Reply)
		reply.Header.Set(HeaderRequestID, RequestID(ctx))
		if b.cfg.Name != "" {
			reply.Header.Set(HeaderSender, b.cfg.Name)
		}
		if err != nil {
			reply.Data = encodeError(toRemoteError(err))
		} else if reply.Data, err = encode(resp); err != nil {
			log.Error("bus encode reply", "err", err)
			reply.Data = encodeError(&RemoteError{Code: CodeInternal, Message: err.Error()})
		}
		if err := b.nc.PublishMsg(reply); err != nil {
			log.Warn("bus send reply", "err", err)
		}
	}
	if err := b.subscribeCore(s, queue, serve); err != nil {
		return nil, fmt.Errorf("bus handle %s: %w", subject, err)
	}
	return s, nil
}

// logHandlerError logs a failed handler: errors the handler chose to send
// as *RemoteError are expected outcomes (not found, conflict) and go to
// debug; anything else is a service failure worth a warning. Panics were
// already logged with their stack.
func logHandlerError(log *slog.Logger, err error) {
	if err == nil {
		return
	}
	if re, ok := errors.AsType[*RemoteError](err); ok {
		if re.Code != CodePanic {
			log.Debug("bus handler returned error", "err", err)
		}
		return
	}
	log.Warn("bus handler failed", "err", err)
}

// subscribeCore subscribes s to its subject on core NATS (not JetStream)
// and dispatches every message to serve.
func (b *Bus) subscribeCore(s *Subscription, queue string, serve func(*nats.Msg)) error {
	cb := func(m *nats.Msg) {
		if !s.dispatch(func() { serve(m) }) {
			s.log.Debug("bus message dropped: subscription stopping")
		}
	}
	var sub *nats.Subscription
	var err error
	if queue == "" {
		sub, err = b.nc.Subscribe(s.subject, cb)
	} else {
		sub, err = b.nc.QueueSubscribe(s.subject, queue, cb)
	}
	if err != nil {
		s.cancel()
		return b.translate(context.Background(), err)
	}

	done := make(chan struct{})
	var doneOnce sync.Once
	markDone := func() { doneOnce.Do(func() { close(done) }) }
	sub.SetClosedHandler(func(string) { markDone() })
	s.transportDone = done
	s.stop = func() error {
		// Drain rather than unsubscribe: messages already received are
		// still handled, so accepted calls get their reply.
		err := sub.Drain()
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
			markDone()
			return nil
		}
		return err
	}

	// While disconnected there is nothing to wait for: the client sends
	// its subscriptions again when it reconnects.
	if b.nc.IsConnected() {
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.DrainTimeout)
		defer cancel()
		if err := b.nc.FlushWithContext(ctx); err != nil {
			s.log.Debug("bus flush after subscribe", "err", err)
		}
	}
	// Registered last, once s can be stopped; a Close that began meanwhile
	// would have missed s, so stop it here.
	if err := b.track(s); err != nil {
		_ = s.Unsubscribe()
		return err
	}
	return nil
}
