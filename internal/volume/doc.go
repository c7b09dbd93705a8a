// Package volume is the block storage service: a Cinder v3 API over the
// database, a scheduler that places volumes on storage hosts, and the API
// side of the bus protocol with the volume agents (package agentproto).
//
// The API owns every volume's state. Each status change is one
// compare-and-set UPDATE (WHERE id = ? AND status = ?), so two requests
// racing for the same volume cannot both win; agents only do the work they
// are told and report back, and their reports move the statuses on.
package volume
