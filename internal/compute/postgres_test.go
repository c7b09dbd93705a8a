package compute_test

import (
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store/storetest"
)

// TestSuitePostgres runs the behaviour tests again on PostgreSQL when the
// test setup provides one (make test does), so the schema, the queries
// and the claim serialisation are proven on both engines. The whole
// package runs on PostgreSQL with NIMBUS_TEST_COMPUTE_ENGINE=postgres.
func TestSuitePostgres(t *testing.T) {
	storetest.RunOnPostgres(t, engineEnv, []storetest.Case{
		{Name: "flavors", Fn: TestDefaultFlavors},
		{Name: "flavor manage", Fn: TestFlavorManage},
		{Name: "extra specs", Fn: TestFlavorExtraSpecs},
		{Name: "keypairs", Fn: TestKeypairs},
		{Name: "server lifecycle", Fn: TestServerLifecycle},
		{Name: "bad input", Fn: TestServerCreateBadInput},
		{Name: "quota", Fn: TestServerQuota},
		{Name: "list filters", Fn: TestServerListFilters},
		{Name: "metadata and tags", Fn: TestServerMetadataAndTags},
		{Name: "resize rebuild snapshot", Fn: TestServerResizeRebuildSnapshot},
		{Name: "no valid host", Fn: TestNoValidHostAndReschedule},
		{Name: "concurrent boots", Fn: TestConcurrentBootsNeverOvercommit},
		{Name: "scheduler filters", Fn: TestSchedulerFilters},
		{Name: "server groups", Fn: TestServerGroups},
		{Name: "reconcile", Fn: TestHostDownAndReconcile},
		{Name: "volume watchdog", Fn: TestWatchdogAttachLost},
		{Name: "shelve rescue backup", Fn: TestShelveRescueBackup},
		{Name: "quota sets", Fn: TestQuotaSets},
		{Name: "hypervisors and services", Fn: TestHypervisorsAndServices},
		{Name: "usage and consoles", Fn: TestUsageAndConsoles},
		{Name: "aggregates", Fn: TestAggregatesAndZones},
		{Name: "gophercloud", Fn: TestGophercloud},
		{Name: "image and network checks", Fn: TestImageAndNetworkChecks},
		{Name: "least loaded", Fn: TestLeastLoadedSpreads},
		{Name: "policy personas", Fn: TestPolicyPersonas},
		{Name: "server list paging", Fn: TestServerListPaging},
		{Name: "claims re-check the database", Fn: TestClaimRechecksTheDatabase},
		{Name: "diagnostics", Fn: TestServerDiagnostics},
		{Name: "local delete releases ports", Fn: TestLocalDeleteReleasesPorts},
	})
}
