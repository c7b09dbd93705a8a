// Package proxy is Nimbus's Swift proxy server: the Swift v1 object storage
// API (/v1/{account}[/{container}[/{object}]] and /info) in front of the
// account, container and object servers of internal/objectstore/server.
//
// # Wiring
//
//	p, err := proxy.New(proxy.Config{
//		AccountRing: "/etc/nimbus/swift/account.ring.gz",
//		ContainerRing: "/etc/nimbus/swift/container.ring.gz",
//		ObjectRing: "/etc/nimbus/swift/object.ring.gz",
//		HashPathPrefix: prefix, HashPathSuffix: suffix, // as the storage nodes
//		Tokens: identityService, // or an api.RemoteValidator
//	})
//	defer p.Close()
//	http.Serve(ln, p) // port 8080
//
// Serve it with a ReadHeaderTimeout but no whole-request timeouts: object
// bodies stream in both directions and take as long as they take.
//
// # How requests reach storage
//
// Every name is placed by its ring: md5 of the path gives a partition and
// its primary devices; handoff devices (ring.GetMoreNodes) stand in when
// primaries fail. The proxy gives every write its X-Timestamp, so storage
// servers order concurrent writes by when the cluster accepted them.
//
//   - Reads (GET/HEAD) ask one node at a time, primaries first, and return
//     the first answer that is not a failure or a 404, so an object written
//     to a handoff while a primary was down is still found. X-Newest: true
//     asks every primary and returns the newest copy.
//   - Writes go to one node per replica at once. A slot whose node fails
//     moves on to the next handoff; the answer is Swift's best_response: the
//     highest status of the first class (2xx, 3xx, 4xx) a majority of
//     replicas agreed on, else 503. Object PUTs send Expect: 100-continue and
//     pick their nodes before the first body byte, then stream the body to
//     all of them; a node that fails mid-upload is dropped while a quorum
//     remains.
//   - Object writes carry X-Container-Host/-Partition/-Device naming the
//     container servers to update (one per object node, as Swift spreads
//     them), container writes carry X-Account-*, and objects with
//     X-Delete-At carry X-Delete-At-Container/-Host/-Partition/-Device for
//     the expirer's queue in the .expiring_objects account.
//   - A node that keeps failing (ErrorSuppressionLimit errors, each within
//     ErrorSuppressionInterval of the last) or answers 507 is skipped until
//     the interval passes without errors.
//   - Account and container existence and ACLs are cached for InfoCacheTTL;
//     writes through this proxy drop their entries.
//   - Ring files are re-read when they change, every RingCheckInterval.
//
// # Storage policies
//
// Config.Policies are Swift's storage policies; each has its own object
// ring (object-N.ring.gz beside ObjectRing). A container PUT binds the
// container to the policy named in X-Storage-Policy (name or alias, any
// case; 400 for an unknown or deprecated one) by sending
// X-Backend-Storage-Policy-Index, which the container servers refuse with
// 409 for an existing container in another policy; without a name it
// sends X-Backend-Storage-Policy-Default, which only a new container
// takes. Object requests are placed with the ring of their container's
// policy (from the cached container info) and carry its index to the
// object servers. /info lists the policies that are not deprecated.
//
// # Auth
//
// Tokens are validated with the identity service's api.TokenValidator.
// Authorization follows Swift's keystoneauth: account AUTH_<project id>;
// operator roles (admin, member, swiftoperator) own their project's
// account; ResellerAdmin owns every account; X-Container-Read/-Write grant
// container access to <project>:<user> (with * wildcards) or role names,
// .r:<referrer> and .rlistings grant anonymous reads; X-Account-Access-Control
// (read-only, read-write, admin) grants account-wide access to
// <project>:<user> forms, which upstream keystoneauth does not support.
// Denials are 401 without a token and 403 with one.
//
// # Middleware
//
// Swift's default proxy middlewares are built in, each in its own file,
// each on by default and listed in /info while enabled (Config.Middlewares
// turns them off): healthcheck and crossdomain (middleware.go), CORS
// (cors.go), temp URLs (tempurl.go), form posts (formpost.go), static web
// sites (staticweb.go), bulk delete and archive extraction (bulk.go),
// DLO (dlo.go) and SLO (slo.go) served through largeobject.go with single
// and multiple byte ranges, legacy versioning with X-Versions-Location and
// X-History-Location (versioning.go), and account and container quotas
// (quotas.go).
//
// # Not yet
//
// Container listings showing an SLO's total size (the object server would
// need to honour Swift's container update overrides), temp URL IP ranges,
// erasure-coded policies, resuming a GET on another node when one
// fails mid-body, and container sync (X-Container-Sync-To is refused with
// 400, and /info does not list container_sync) are left for later.
package proxy
