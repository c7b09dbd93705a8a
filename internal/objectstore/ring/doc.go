// Package ring places Swift partitions on storage devices.
//
// It has two halves, as Swift does. The Builder is the operator's tool: it
// keeps every device with its failure domain (region, zone, host ip:port) and
// weight, and on Rebalance assigns each of the 2^part_power partitions'
// replicas to devices in proportion to weight while keeping a partition's
// replicas as dispersed across regions, then zones, then hosts, then devices
// as the weights allow. It remembers when each partition replica last moved
// so that min_part_hours can stop data from being shuffled again before
// replication has caught up.
//
// # Weight before dispersion
//
// When weight and dispersion conflict, weight wins, as in Swift with an
// overload factor of 0: a zone with two thirds of the weight of a
// three-replica ring holds two replicas of every partition (on different
// hosts), and a region too light to hold one replica of every partition
// gets its weight's worth only, so its disks never fill faster than the
// rest. That is also what lets an operator bring a new region or zone in
// gradually by raising its weight step by step. The only exception is
// physical: a device never holds two replicas of a partition while there are
// at least as many devices as replicas, so a very heavy device is capped at
// one replica of every partition. There is no overload factor to trade
// balance for dispersion. The Ring is what
// proxies and storage servers load: an immutable replica → partition → device
// table plus the device list, read with GetNodes, GetPartNodes and
// GetMoreNodes (handoffs), and reloadable when the file on disk changes.
//
// Nimbus keeps the Swift placement model (md5 of the path, the top
// part_power bits of its first four bytes as the partition, a cluster-secret
// prefix and suffix mixed into the hash) so that behaviour operators know
// from Swift carries over; the algorithms and file formats are our own.
//
// # Replicas
//
// The replica count is an integer. Swift allows fractional counts so a ring
// can migrate between replica counts gradually; Nimbus does not, because an
// operator changing the replica count can create a new ring and let
// replication move the data, and integer counts keep the table rectangular.
//
// # File formats
//
// Both files are gzip-compressed JSON, written atomically (temporary file in
// the same directory, fsync, rename, directory fsync) so a reader never sees
// a half-written file. Inspect them with `zcat file | jq`.
//
// A ring file ("object.ring.gz") holds:
//
//	{
//	  "format": "nimbus-ring",          // fixed
//	  "version": 1,                      // file format version
//	  "build_version": 7,                // builder's rebalance counter
//	  "part_power": 16,                  // 2^16 partitions
//	  "part_shift": 16,                  // 32 - part_power
//	  "replicas": 3,
//	  "devices": [                       // any order; ids unique, < 65535
//	    {"id": 0, "region": 1, "zone": 1, "ip": "10.0.0.1", "port": 6200,
//	     "device": "sdb1", "weight": 100, "meta": ""}
//	  ],
//	  "replica2part2dev": [[0, 4, ...], ...]  // replicas rows × 2^part_power device ids
//	}
//
// A builder file ("object.builder") holds the ring's fields plus the state
// needed for the next rebalance:
//
//	{
//	  "format": "nimbus-ring-builder",
//	  "version": 1,
//	  "build_version": 7,
//	  "part_power": 16,
//	  "replicas": 3,
//	  "min_part_hours": 1,
//	  "next_device_id": 31,
//	  "last_rebalance": "2026-11-27T01:00:00Z",
//	  "devices": [{..., "removed": true}],        // removed: leaves at the next rebalance
//	  "replica2part2dev": [[...]],                // -1 = unassigned; absent before the first rebalance
//	  "last_moved": [[...]]                       // unix seconds each partition replica last moved; 0 = never
//	}
//
// The hash path prefix and suffix are not in either file: they are a
// cluster secret that comes from configuration (Swift's swift.conf), so a
// leaked ring file does not let anyone predict placement.
package ring
