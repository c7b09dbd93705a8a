package network

import (
	"os"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store/storetest"
)

// TestSuitePostgres runs the behaviour tests again on PostgreSQL when the
// test setup provides one (make test does), so the schema, queries and
// the retry of lost allocation races are proven on both engines. The
// whole package can also be run on PostgreSQL with
// NIMBUS_TEST_NETWORK_ENGINE=postgres.
func TestSuitePostgres(t *testing.T) {
	if os.Getenv(storetest.DSNEnv) == "" {
		t.Skip("no PostgreSQL: set " + storetest.DSNEnv + " (make test does) to run the suite against PostgreSQL")
	}
	if os.Getenv(engineEnv) == "postgres" {
		t.Skip("the whole suite is already running on PostgreSQL")
	}
	t.Setenv(engineEnv, "postgres")
	for _, tc := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"networks", TestNetworkCreateDefaults},
		{"provider networks", TestProviderNetworks},
		{"network update and delete", TestNetworkUpdateDelete},
		{"list queries", TestListQueries},
		{"subnets", TestSubnetDefaultsAndValidation},
		{"subnet pools", TestSubnetPools},
		{"ports", TestPortIPAM},
		{"ipv6 and exhaustion", TestPortIPv6AndExhaustion},
		{"default security group", TestDefaultSecurityGroup},
		{"security group rules", TestSecurityGroupRules},
		{"quotas", TestQuotas},
		{"routers and floating IPs", TestRoutersAndFloatingIPs},
		{"distributed routers", TestDistributedRouters},
		{"agents", TestAgentsAndScheduling},
		{"informational resources", TestInfoResources},
		{"gophercloud", TestGophercloud},
		{"bulk create", TestBulkCreate},
		{"metering", TestMetering},
	} {
		t.Run(tc.name, tc.fn)
	}
}
