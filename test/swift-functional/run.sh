#!/usr/bin/env bash
# Runs Swift's functional suite (test/functional of openstack/swift) against
# a running Nimbus, with keystone v3 auth. scripts/conformance.sh calls it
# (suite swift-functional) once `nimbus up` is up:
#
#   test/swift-functional/run.sh DATA_DIR OUT_DIR [-- PYTEST ARGS...]
#
# DATA_DIR is the cloud's data dir (admin-openrc.sh); results go to OUT_DIR
# (test.conf, pytest.log, junit.xml, summary.txt). The suite is not
# packaged by Debian: SWIFT_SRC names a checkout or export of the swift tree
# at the tag matching Debian's python3-swift (2.30.1), whose test/ package
# the suite imports, e.g. `git -C swift archive 2.30.1 test | tar -x -C
# /var/cache/nimbus-swift-2.30.1`.
#
# The users the suite wants, made as an operator would (openstack CLI):
# test/tester (member: an operator of its account), test2/tester2 (member),
# test/tester3 (reader only: same account, no operator role) and
# test4/tester4 (member) in the domain test-domain.
set -uo pipefail
data=$1 out=$2
shift 2
[ "${1:-}" = "--" ] && shift
SWIFT_SRC=${SWIFT_SRC:-/var/cache/nimbus-swift-2.30.1}
[ -f "$SWIFT_SRC/test/functional/__init__.py" ] || {
  echo "Swift's functional suite not found in $SWIFT_SRC (set SWIFT_SRC; see $0)" >&2
  exit 1
}
password=swift-functional-$RANDOM$RANDOM
# One openstack process reading the commands from stdin (cliff's
# interactive mode): each separate CLI start costs seconds.
(
  # shellcheck disable=SC1091
  source "$data/admin-openrc.sh" && export OS_CLIENT_CONFIG_FILE=/dev/null
  /usr/bin/openstack <<EOF2
domain create test-domain
project create test
project create test2
project create --domain test-domain test4
user create --project test --password $password tester
role add --project test --user tester member
user create --project test2 --password $password tester2
role add --project test2 --user tester2 member
user create --project test --password $password tester3
role add --project test --user tester3 reader
user create --domain test-domain --project test4 --project-domain test-domain --password $password tester4
role add --project test4 --project-domain test-domain --user tester4 --user-domain test-domain member
role assignment list --names --project test4 --project-domain test-domain
EOF2
) >"$out/users.log" 2>&1
grep -q "tester4@test-domain" "$out/users.log" || { echo "could not create the test users:" >&2; cat "$out/users.log" >&2; exit 1; }
uri=$(sed -n 's/^export OS_AUTH_URL=//p' "$data/admin-openrc.sh" | tr -d "\"'")
uri=${uri%/}
cat >"$out/test.conf" <<EOF2
[func_test]
auth_version = 3
auth_uri = $uri/
account = test
username = tester
password = $password
account2 = test2
username2 = tester2
password2 = $password
username3 = tester3
password3 = $password
account4 = test4
username4 = tester4
password4 = $password
domain4 = test-domain
EOF2
# The storage domain of the proxy's domain_remap, if on (Swift's /info does
# not publish it): the domain_remap and static web tests need it.
[ -n "${SWIFT_STORAGE_DOMAIN:-}" ] && echo "storage_domain = $SWIFT_STORAGE_DOMAIN" >>"$out/test.conf"
cmd=(/usr/bin/python3 -m pytest test/functional --ignore=test/functional/s3api -p no:cacheprovider
  -q -rfEs --junitxml="$out/junit.xml" "$@")
echo "command:   (cd $SWIFT_SRC && SWIFT_TEST_CONFIG_FILE=test.conf ${cmd[*]})" | tee -a "$out/run-info.txt"
start=$(date +%s)
(cd "$SWIFT_SRC" && SWIFT_TEST_CONFIG_FILE="$out/test.conf" timeout -k 30 "${RUN_TIMEOUT:-1800}" "${cmd[@]}") \
  >"$out/pytest.log" 2>&1
rc=$?
echo "elapsed:   $(($(date +%s) - start)) s, pytest exit $rc" | tee -a "$out/run-info.txt"
tail -1 "$out/pytest.log" | tee "$out/summary.txt"
grep -E '^(FAILED|ERROR) ' "$out/pytest.log" >"$out/failures.txt"
exit "$rc"
