package metadata

import "github.com/nimbus-cloud/nimbus/internal/compute"

// InstanceFromSpec is the metadata view of what agents build a guest
// from. The admin password is left out: only a config drive carries it.
func InstanceFromSpec(s compute.InstanceSpec) Instance {
	return Instance{
		ID: s.ID, Name: s.Name, Hostname: s.Hostname, ProjectID: s.ProjectID, AvailabilityZone: s.AvailabilityZone,
		LaunchIndex: s.LaunchIndex, KeyName: s.KeyName, KeyData: s.KeyData, UserData: s.UserData, Metadata: s.Metadata,
		ImageID: s.ImageID, FlavorName: s.Flavor.Name, EphemeralGB: s.Flavor.EphemeralG, SwapMB: s.Flavor.SwapMB,
		SecurityGroups: s.SecurityGroups,
	}
}

// instanceFromGuest adds the database-only EC2 identifiers.
func instanceFromGuest(g compute.GuestInfo) Instance {
	i := InstanceFromSpec(g.InstanceSpec)
	i.Seq, i.ReservationID = g.Seq, g.ReservationID
	return i
}
