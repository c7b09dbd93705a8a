// Package integration holds Nimbus's API behaviour suite: tests that drive
// a whole cloud through gophercloud, the Go client real users run, and
// judge it by what that client sees.
//
// The same suite has two runners (as etcd's tests/framework does):
//
//   - in-process (the default): TestMain starts a whole cloud with
//     cloud.Start on a temp dir and free ports, as etcd's embed package
//     does, and stops it when the tests end;
//   - external: with NIMBUS_TEST_AUTH_URL (the versionless identity URL)
//     and NIMBUS_TEST_ADMIN_PASSWORD set, the suite runs against an
//     already running cloud, such as one started by `nimbus up`.
//
// Tests create what they use under unique names and delete it afterwards,
// so they run in parallel and leave a shared cloud as they found it.
package integration
