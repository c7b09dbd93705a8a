// Package server implements Nimbus's Swift storage servers: the object,
// container and account servers that sit behind the object proxy and speak
// Swift's internal storage protocol, plus the per-node consistency loops that
// belong next to them (object updater, container stats reporter, object
// auditor).
//
// # Wiring
//
// The lead wires one Config per storage node (shared by the three servers):
//
//	cfg := server.Config{DevicesRoot: "/srv/node", HashPathPrefix: p, HashPathSuffix: s}
//	objects, err := server.NewObjectServer(cfg)       // port 6200
//	containers, err := server.NewContainerServer(cfg) // port 6201
//	accounts, err := server.NewAccountServer(cfg)     // port 6202
//	go objects.RunUpdater(ctx)    // replays async_pending container updates
//	go objects.RunAuditor(ctx)    // checksums .data files, quarantines bad ones
//	go containers.RunUpdater(ctx) // reports container stats to account servers
//	defer containers.Close(); defer accounts.Close()
//
// Config needs DevicesRoot and a hash path prefix or suffix (the same on
// every node, forever). Call CheckXattr on each device at start-up so a
// filesystem without user xattrs fails loudly instead of answering 507.
// Serve each handler from an http.Server with a ReadHeaderTimeout but no
// whole-request ReadTimeout/WriteTimeout: bodies stream, and a multi-GiB
// object takes as long as it takes.
//
// Every server is an http.Handler. None of them uses http.ServeMux, whose
// path cleaning would rewrite object names containing "..": requests are
// dispatched by method on the raw decoded path.
//
// # Internal protocol
//
// Paths are /<device>/<partition>/<account>[/<container>[/<object>]], with the
// device and partition chosen by the caller (the proxy, from the rings) and
// never derived from names. Writes carry X-Timestamp (Swift's
// "seconds.fraction[_offset]" form); the newest timestamp wins and an older
// write is answered 409 with X-Backend-Timestamp set to what is on disk.
//
//   - Object server: PUT/GET/HEAD/POST/DELETE. A successful PUT or DELETE
//     updates the container server named by X-Container-Host,
//     X-Container-Partition and X-Container-Device (comma-separated lists
//     allowed, as Swift does) with X-Timestamp, X-Size, X-Content-Type,
//     X-Etag, X-Trans-Id and X-Backend-Storage-Policy-Index; a failed update
//     is written to async_pending and replayed by RunUpdater. A PUT or POST
//     with X-Delete-At also queues the object for the expirer in the
//     .expiring_objects account (X-Delete-At-Host, -Partition, -Device,
//     -Container). GET/HEAD answer Range, If-Match, If-None-Match,
//     If-Modified-Since, If-Unmodified-Since and If-Range, and return
//     X-Timestamp, X-Backend-Timestamp, X-Backend-Data-Timestamp and
//     X-Backend-Durable-Timestamp; 404s carry X-Backend-Timestamp of a
//     tombstone. X-Backend-Replication: True reads expired objects.
//     DELETE honours X-If-Delete-At (the expirer's guard, 412 on mismatch).
//   - Storage policies (Config.Policies): every object request names its
//     policy in X-Backend-Storage-Policy-Index (0 when absent; an index
//     the node does not know is 503), which picks the objects-N dir, the
//     async_pending-N queue and the quarantine dir; REPLICATE and SYNC
//     carry it too. The updater, auditor and replicators walk every
//     policy's dirs. A container PUT with X-Backend-Storage-Policy-Index
//     binds a new (or deleted) container to that policy and is 409 for
//     a live container in another one (X-Backend-Storage-Policy-Index
//     in the answer names its policy); X-Backend-Storage-Policy-Default
//     applies to new containers only. Account HEAD and GET report usage
//     per policy (X-Account-Storage-Policy-<name>-Container-Count,
//     -Object-Count, -Bytes-Used) summed from the container rows.
//   - Container server: PUT/DELETE of the container itself (X-Account-Host,
//     X-Account-Partition, X-Account-Device say where to report), PUT/DELETE
//     of object rows (X-Timestamp, X-Size, X-Content-Type, X-Etag), GET
//     listings (prefix, delimiter, marker, end_marker, limit ≤ 10000,
//     reverse; plain, json or xml by ?format= or Accept), HEAD (counts in
//     X-Container-Object-Count and X-Container-Bytes-Used, and
//     X-Backend-Put-Timestamp, -Delete-Timestamp, -Status-Changed-At), POST
//     metadata. Containers of hidden accounts (".expiring_objects") are
//     created on their first object row, as Swift auto-creates them.
//   - Account server: PUT/DELETE/HEAD/GET/POST of the account and PUT of
//     container rows (X-Put-Timestamp, X-Delete-Timestamp, X-Object-Count,
//     X-Bytes-Used) sent by container servers.
//
// # On-disk layout (per device, <root>/<device>/)
//
//	objects/<partition>/<hash[29:]>/<hash>/<timestamp>.data|.meta|.ts   policy 0
//	objects-N/...              the same for storage policy N
//	containers/<partition>/<hash[29:]>/<hash>/<hash>.db
//	accounts/<partition>/<hash[29:]>/<hash>/<hash>.db
//	tmp/                       in-flight writes, renamed into place
//	async_pending[-N]/<hash[29:]>/<hash>-<timestamp>-<target>   queued container updates of policy N
//	quarantined/objects[-N]/<hash>[-n]/                      corrupted objects
//
// hash is md5(prefix + "/" + account[/container[/object]] + suffix) in hex,
// as Swift computes it. Object metadata lives in the user.swift.metadata
// extended attribute (split over user.swift.metadata1, 2, ... in 254-byte
// chunks when long); it is JSON rather than Swift's pickle, so Nimbus never
// unpickles disk data. Timestamps name files in Swift's internal form
// ("1700000000.12345" or "1700000000.12345_000000000000000a").
//
// # Decisions
//
//   - Writes are durable before they are acknowledged: data and xattr go
//     to an unnamed O_TMPFILE in the hash dir (a named file in tmp/ where
//     the filesystem has none), which is then linked into place. Writers
//     on one filesystem share one syncfs (fscommit.go): a writer is
//     answered by a syncfs that started after its link. An object PUT
//     sends its container updates first, and a listing row on the same
//     filesystem waits for such a syncfs, which then covers the object
//     as well: object and rows cost one sync together. A writer alone on
//     its filesystem fsyncs its file, its hash dir and the parents of the
//     directories it created instead; a file beside an older version, or
//     a large one, is fsynced before its link. A PUT cut short leaves
//     nothing visible; a named tmp file is removed at once, or by the
//     updater's sweep after TmpMaxAge if the process died.
//   - Last write wins by X-Timestamp, never by arrival: a PUT, POST or
//     DELETE not newer than what is on disk gets 409 with
//     X-Backend-Timestamp. After every write the hash dir keeps only the
//     newest .data or .ts and a newer .meta; tombstones go after ReclaimAge.
//   - A fast-POST .meta replaces user metadata and the allowed headers
//     wholesale (Swift semantics); Content-Type, ETag, Content-Length and
//     sysmeta stay with the .data.
//   - Metadata that does not fit in the filesystem's xattr space (ext4
//     keeps all xattrs of a file in one 4 KiB block, less than Swift's
//     limits allow) is appended after the data in the same file, and the
//     xattr holds only its offset; one file still carries everything.
//   - Corruption found on read (size, metadata, or a full GET whose MD5
//     does not match) or by the auditor moves the hash dir to quarantined/,
//     so the object reads as missing and replication can restore it.
//   - Object to container updates that fail are queued one file per target
//     in async_pending and replayed by ObjectServer.RunUpdater. Container to
//     account reports use Swift's own mechanism instead of a second queue:
//     the container database keeps reported_* columns, a report is pending
//     while they differ from the live stats, and ContainerServer.RunUpdater
//     sends it (promptly after a change, and in a periodic sweep), so a
//     failed report survives restarts exactly like an async pending.
//   - Account and container databases are created in tmp/ and hard-linked
//     into place, so a half-initialised database is never visible; they run
//     in WAL mode with synchronous=FULL, since an acknowledged listing
//     update must survive a power cut as the object does. Listing rows
//     are the exception in form, not in substance: as in Swift, they are
//     appended to the database's .pending file in batches (one write per
//     database per sync), acknowledged after a syncfs of their filesystem
//     that began after the append, and merged into SQLite before the
//     database is next read (groupcommit.go, pending.go).
//   - Suffix hashes for replication are cached per partition in memory
//     and dropped by every write that changes a suffix (suffixcache.go);
//     a partition is recomputed in full every 30–60 minutes and when its
//     directory is replaced, for what changed behind the server's back.
//   - Names: account and container up to 256 bytes, objects up to 1024,
//     valid UTF-8 without NUL (412 otherwise, 400 for length or emptiness),
//     no "/" in container names. Device names are single path components
//     that must be real directories (not symlinks) directly under
//     DevicesRoot, and mount points when MountCheck is set (else 507);
//     partitions are decimal. Names are only ever hashed, so no name
//     reaches the filesystem.
package server
