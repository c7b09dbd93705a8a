package network

import (
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store/storetest"
)

// TestSuitePostgres runs the behaviour tests again on PostgreSQL when the
// test setup provides one (make test does), so the schema, queries and
// the retry of lost allocation races are proven on both engines. The
// whole package can also be run on PostgreSQL with
// NIMBUS_TEST_NETWORK_ENGINE=postgres.
func TestSuitePostgres(t *testing.T) {
	storetest.RunOnPostgres(t, engineEnv, []storetest.Case{
		{Name: "networks", Fn: TestNetworkCreateDefaults},
		{Name: "provider networks", Fn: TestProviderNetworks},
		{Name: "network update and delete", Fn: TestNetworkUpdateDelete},
		{Name: "list queries", Fn: TestListQueries},
		{Name: "subnets", Fn: TestSubnetDefaultsAndValidation},
		{Name: "subnet pools", Fn: TestSubnetPools},
		{Name: "ports", Fn: TestPortIPAM},
		{Name: "ipv6 and exhaustion", Fn: TestPortIPv6AndExhaustion},
		{Name: "default security group", Fn: TestDefaultSecurityGroup},
		{Name: "security group rules", Fn: TestSecurityGroupRules},
		{Name: "quotas", Fn: TestQuotas},
		{Name: "routers and floating IPs", Fn: TestRoutersAndFloatingIPs},
		{Name: "distributed routers", Fn: TestDistributedRouters},
		{Name: "agents", Fn: TestAgentsAndScheduling},
		{Name: "informational resources", Fn: TestInfoResources},
		{Name: "gophercloud", Fn: TestGophercloud},
		{Name: "bulk create", Fn: TestBulkCreate},
		{Name: "metering", Fn: TestMetering},
	})
}
