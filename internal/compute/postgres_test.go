package compute_test

import (
	"os"
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store/storetest"
)

// TestSuitePostgres runs the behaviour tests again on PostgreSQL when the
// test setup provides one (make test does), so the schema, the queries
// and the claim serialisation are proven on both engines. The whole
// package runs on PostgreSQL with NIMBUS_TEST_COMPUTE_ENGINE=postgres.
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
		{"flavors", TestDefaultFlavors},
		{"flavor manage", TestFlavorManage},
		{"extra specs", TestFlavorExtraSpecs},
		{"keypairs", TestKeypairs},
		{"server lifecycle", TestServerLifecycle},
		{"bad input", TestServerCreateBadInput},
		{"quota", TestServerQuota},
		{"list filters", TestServerListFilters},
		{"metadata and tags", TestServerMetadataAndTags},
		{"resize rebuild snapshot", TestServerResizeRebuildSnapshot},
		{"no valid host", TestNoValidHostAndReschedule},
		{"concurrent boots", TestConcurrentBootsNeverOvercommit},
		{"scheduler filters", TestSchedulerFilters},
		{"server groups", TestServerGroups},
		{"reconcile", TestHostDownAndReconcile},
		{"shelve rescue backup", TestShelveRescueBackup},
		{"quota sets", TestQuotaSets},
		{"hypervisors and services", TestHypervisorsAndServices},
		{"usage and consoles", TestUsageAndConsoles},
		{"aggregates", TestAggregatesAndZones},
		{"gophercloud", TestGophercloud},
		{"image and network checks", TestImageAndNetworkChecks},
		{"least loaded", TestLeastLoadedSpreads},
		{"policy personas", TestPolicyPersonas},
		{"server list paging", TestServerListPaging},
		{"claims re-check the database", TestClaimRechecksTheDatabase},
		{"diagnostics", TestServerDiagnostics},
		{"local delete releases ports", TestLocalDeleteReleasesPorts},
	} {
		t.Run(tc.name, tc.fn)
	}
}
