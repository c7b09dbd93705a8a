// Package bus is the message bus every Nimbus service talks over.
//
// It wraps NATS so that services exchange typed Go values instead of raw
// bytes, and so that the cross-cutting concerns of an OpenStack-style cloud
// (request ids, remote errors, timeouts, durable work) are handled once:
//
//   - [Call] / [Handle]: request/reply RPC. Handlers share load through a
//     NATS queue group; the caller's deadline and request id travel with the
//     request; handler errors and panics come back as [*RemoteError].
//   - [Cast]: fire-and-forget command to a queue group (plain NATS publish,
//     lost if nobody listens).
//   - [CastDurable] / [Consume]: at-least-once commands backed by a JetStream
//     work-queue stream, for work that must survive missing workers and
//     server restarts (e.g. "build this instance").
//   - [Publish] / [Subscribe]: events fanned out to every subscriber, or
//     shared by a queue group.
//
// # Wire format
//
// Every message body is a JSON envelope {"payload": ..., "error": ...}; the
// error member is only set on replies. Metadata travels in NATS headers so
// that tools such as the nats CLI can see it without decoding the body:
// [HeaderRequestID] on every message, [HeaderTimeout] on calls and
// [HeaderSender] naming the sending service.
//
// # Request ids
//
// The HTTP layer calls [WithRequestID] with the X-OpenStack-Request-Id it
// received or generated; every message sent with that context carries the id
// and the handler's context returns it from [RequestID]. Messages sent with a
// context that has no id get a fresh one from [NewRequestID], so every
// message on the bus can be traced.
//
// # Server
//
// [StartServer] runs an embedded nats-server with JetStream, which is the
// default deployment; [Connect] works the same against an external NATS
// cluster given by URL. Clients reconnect forever, so services survive bus
// restarts without supervision.
package bus
