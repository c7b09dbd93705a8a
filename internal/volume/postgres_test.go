package volume_test

import (
	"testing"

	"github.com/nimbus-cloud/nimbus/internal/store/storetest"
)

// TestSuitePostgres runs the behaviour tests again on PostgreSQL when the
// test setup provides one (make test does), so the schema, the
// compare-and-set updates and the quota locks are proven on both
// engines. The whole package runs on PostgreSQL with
// NIMBUS_TEST_VOLUME_ENGINE=postgres.
func TestSuitePostgres(t *testing.T) {
	storetest.RunOnPostgres(t, engineEnv, []storetest.Case{
		{Name: "versions", Fn: TestVersionsAndDiscovery},
		{Name: "services", Fn: TestServicesAndHosts},
		{Name: "lifecycle", Fn: TestVolumeLifecycle},
		{Name: "bad input", Fn: TestVolumeBadInput},
		{Name: "sources", Fn: TestVolumeSources},
		{Name: "no host", Fn: TestNoHostMeansError},
		{Name: "list filters", Fn: TestVolumeListFilters},
		{Name: "pagination", Fn: TestVolumePagination},
		{Name: "metadata", Fn: TestVolumeMetadata},
		{Name: "quotas", Fn: TestQuotasAndLimits},
		{Name: "nova attach flow", Fn: TestNovaAttachFlow},
		{Name: "attach without reserve", Fn: TestAttachWithoutReserve},
		{Name: "reserve race", Fn: TestReserveRace},
		{Name: "actions", Fn: TestVolumeActions},
		{Name: "agent failures", Fn: TestAgentFailures},
		{Name: "snapshots", Fn: TestSnapshots},
		{Name: "types", Fn: TestVolumeTypes},
		{Name: "gophercloud", Fn: TestGophercloud},
		{Name: "heartbeats settle stuck volumes", Fn: TestHeartbeatsSettleStuckVolumes},
		{Name: "attachments", Fn: TestAttachmentsReserveConnectCompleteDelete},
		{Name: "attachment with connector", Fn: TestAttachmentCreateWithConnector},
		{Name: "attachment export failure", Fn: TestAttachmentExportFailure},
		{Name: "messages", Fn: TestMicroversion3_3Messages},
		{Name: "group types", Fn: TestMicroversion3_11GroupTypes},
		{Name: "summary", Fn: TestMicroversion3_12Summary},
	})
}
