// Package computeagent is the compute agent of one host: the far side of
// the compute bus seam (see package compute) in front of a
// hypervisor.Driver. It takes the host's commands from the durable
// compute.host.<host> queue and carries them out on the driver, answers
// console calls, reports every outcome on compute.reports, sends a
// heartbeat with the driver's capacity, and keeps the API's view of power
// states true (a guest that died is reported SHUTOFF).
//
// Agents never read the database. What they need of other services they
// get through the public APIs as a service user: images from the image
// API (downloaded into a per-host cache named by checksum and verified on
// the way in), ports from the networking API. A build creates the ports
// of the requested networks (or binds the ports the user passed) with
// binding:host_id set to this host, so that the networking agent of the
// host creates their taps (dataplane.PortDevice), waits a bounded time
// for each tap, writes the config drive and spawns the guest. Any failure
// unwinds what the build did; a failure that another host might not have
// (the driver, a tap that never came) asks the scheduler for another host.
//
// # Delivery and order
//
// Commands arrive at least once: an agent remembers the ids it has
// reported and ignores them when they come again, and the driver's
// operations are idempotent where a crash could repeat them (Spawn of a
// running guest is ErrExists, never a second guest). The commands of one
// instance run one at a time in arrival order; different instances run
// concurrently.
//
// # Restart
//
// Start lists the driver's guests and asks the API (compute.sync) which
// guests the host should have, before it takes any command. A guest the
// API still knows is adopted as it is — never started again; a guest the
// API no longer knows (deleted while the agent was away) is destroyed,
// and one it is deleting is deleted and reported. A guest the API expects
// but the driver lacks is reported SHUTOFF; starting it builds it again.
//
// # Wiring (for cmd/nimbus and internal/cloud)
//
// `nimbus agent` and `nimbus up` start one Agent beside the networking
// agent of the same host:
//
//	drv := qemu.New(...)                    // or fake.New for scale tests
//	a, err := computeagent.Start(ctx, computeagent.Config{
//		Host:             host,              // the same name as netagent's Host.Name:
//		                                     // it is the ports' binding:host_id
//		AvailabilityZone: zone,
//		Bus:              c.Bus,
//		Driver:           drv,
//		Image:            imageClient,       // openstack.NewImageV2, service user
//		Network:          networkClient,     // openstack.NewNetworkV2, admin service user
//		ImageCacheDir:    filepath.Join(dataDir, "compute", "images"),
//		TapPrefix:        networkAgentPrefix, // network.agent.prefix (dataplane.Config.Prefix)
//		Log:              log.With("service", "compute-agent"),
//	})
//	...
//	a.Stop(); drv.Close()                    // guests keep running
//
// The service user needs the admin role in the networking service (it
// creates ports in the instance's project and sets binding:host_id) and
// must be able to read every image an instance may boot (admin, or an
// image policy that lets the compute service user read all images). The
// agent does not close the driver. Config.Network may be nil on a host
// without networking (guests then get no NICs, and requests for networks
// fail); Config.Image may not be nil for builds.
package computeagent
