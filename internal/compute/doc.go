// Package compute is Nimbus's compute service, compatible with the
// OpenStack Nova v2.1 API up to microversion 2.79: flavors, keypairs,
// servers and their actions, metadata, tags, interfaces, instance actions,
// server groups, availability zones, aggregates, quotas, limits, usage,
// the admin views of compute services and hypervisors, and the
// deprecated proxies to the image and networking services. It also holds
// the scheduler, which filters and weighs compute hosts and claims their
// resources in the transaction that places a server.
//
// The API never runs guests. It records the desired state in the database
// and talks to compute agents over the message bus; the agents report what
// actually happened. Nothing else crosses that seam, so a QEMU agent, the
// fake agent of package fakeagent and a scale-test simulator are
// interchangeable.
//
// # Agent seam
//
// API to agent, durable (bus.CastDurable to a per-host work queue,
// at-least-once, so agents must ignore a Command.ID they have seen and
// should run the commands of one instance in order):
//
//	compute.host.<host>    Command; Op is one of build, delete, reboot,
//	                       stop, start, pause, unpause, suspend, resume,
//	                       rebuild, resize, confirm_resize, revert_resize,
//	                       snapshot, shelve, rescue, unrescue,
//	                       trigger_crash_dump, attach_interface,
//	                       detach_interface.
//
// API to agent, request/reply (bus.Call), for answers a user waits for:
//
//	compute.console.<host>  ConsoleRequest -> ConsoleReply: the console
//	                        log, or where a VNC or serial console listens.
//
// API to agent, plain publish (loss tolerated):
//
//	compute.events.<host>   ExternalEvent, from os-server-external-events
//	                        (e.g. Neutron's network-vif-plugged).
//
// Agent to API:
//
//	compute.reports         InstanceReport, durable, consumed by the API:
//	                        the outcome of a Command (new vm_state and
//	                        power_state, addresses, a fault, or Reschedule
//	                        when a build failed here but may work on
//	                        another host), or an unsolicited state change
//	                        such as a guest that died.
//	compute.heartbeat       HostReport, plain publish every few seconds:
//	                        identity, zone, capacity, hypervisor type and
//	                        architecture. A host not heard from for
//	                        Config.ServiceDownTime is down and gets nothing.
//	compute.sync            SyncRequest -> SyncReply (bus.Call): an agent
//	                        starting up asks which guests it should have,
//	                        to re-adopt them and finish pending deletes.
//
// The subjects and types are in messages.go and events.go.
//
// # State
//
// Servers have Nova's vm_state, task_state and power_state; the status
// clients see is derived from them exactly as Nova derives it. The API
// sets the task state when it accepts an action, so a conflicting action
// is a 409 at once, and the agent's report clears it. Every command is
// remembered until its report arrives and opens an event on the
// instance action, which carries the request id of the API call.
//
// Quota usage is counted from the servers rows (vcpus, memory_mb), never
// kept as a counter, and host usage from the allocations rows the
// scheduler writes in the same transaction as its capacity check. The
// reconcile loop (Start, Reconcile) owns every transitional state: a
// server whose scheduling was interrupted is scheduled again, and one
// that waited on its agent longer than Config.BuildTimeout is settled.
package compute
