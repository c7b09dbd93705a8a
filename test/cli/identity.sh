#!/usr/bin/env bash
# End-to-end identity checks with Debian's unmodified python3-openstackclient
# against a real `nimbus up` on a temp data dir and a free port, done the way
# a new user would do them. Prints "N passed, M failed" and fails if any did.
set -uo pipefail
cd "$(dirname "$0")/../.."
OPENSTACK=${OPENSTACK:-/usr/bin/openstack}
NIMBUS=${NIMBUS:-bin/nimbus}
[ -x "$OPENSTACK" ] || { echo "openstack CLI not found at $OPENSTACK (apt-get install python3-openstackclient)" >&2; exit 1; }
[ -x "$NIMBUS" ] || { echo "$NIMBUS not built (make build)" >&2; exit 1; }

work=$(mktemp -d)
log="$work/nimbus.log"
NIMBUS_IDENTITY_PORT=0 NIMBUS_IMAGE_PORT=0 NIMBUS_NATS_PORT=0 "$NIMBUS" up --data-dir "$work/data" >"$work/up.out" 2>"$log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 100); do grep -q "Nimbus is up" "$work/up.out" 2>/dev/null && break; sleep 0.1; done
if ! grep -q "Nimbus is up" "$work/up.out"; then
  echo "nimbus up did not start:"; cat "$work/up.out" "$log"; exit 1
fi
# shellcheck disable=SC1091
source "$work/data/admin-openrc.sh"
export OS_CLIENT_CONFIG_FILE=/dev/null

pass=0 fail=0
check() { # check NAME COMMAND... : the command must succeed
  local name=$1; shift
  if out=$("$@" 2>&1); then pass=$((pass+1)); echo "ok   $name"
  else fail=$((fail+1)); echo "FAIL $name"; echo "$out" | sed 's/^/     /' | tail -20; fi
}
expect() { # expect NAME PATTERN COMMAND... : the command must succeed and print PATTERN
  local name=$1 pattern=$2; shift 2
  if out=$("$@" 2>&1) && grep -qE -- "$pattern" <<<"$out"; then pass=$((pass+1)); echo "ok   $name"
  else fail=$((fail+1)); echo "FAIL $name (wanted /$pattern/)"; echo "$out" | sed 's/^/     /' | tail -20; fi
}
refuse() { # refuse NAME PATTERN COMMAND... : the command must fail and print PATTERN
  local name=$1 pattern=$2; shift 2
  if ! out=$("$@" 2>&1) && grep -qE -- "$pattern" <<<"$out"; then pass=$((pass+1)); echo "ok   $name"
  else fail=$((fail+1)); echo "FAIL $name (wanted failure with /$pattern/)"; echo "$out" | sed 's/^/     /' | tail -20; fi
}
os() { "$OPENSTACK" "$@"; }

expect "token issue" '^\| id +\| gAAAA' os token issue
expect "project create" 'name +\| demo-project' os project create demo-project --description "CLI test"
expect "user create --password" 'name +\| alice' os user create --password 'Secret-Pass-1' --project demo-project alice
check  "role add member" os role add --project demo-project --user alice member
expect "group create" 'name +\| devs' os group create devs
check  "group add user" os group add user devs alice
expect "group contains user" 'alice' os group contains user devs alice
expect "role assignment list --names" 'member +\| alice@Default +\| +\| demo-project@Default' os role assignment list --names --user alice
expect "effective assignments expand implied roles" 'reader' os role assignment list --names --effective --user alice
expect "endpoint list" 'identity +\| True +\| public +\| http' os endpoint list
expect "catalog list" 'keystone +\| identity' os catalog list
refuse "duplicate project is a conflict" 'Conflict|409' os project create demo-project
refuse "unknown project is not found" 'No project with a name or ID of .nope. exists|404' os project show nope

# As alice: a token, her project, an application credential and using it.
alice=(--os-username alice --os-password 'Secret-Pass-1' --os-project-name demo-project --os-user-domain-name Default --os-project-domain-name Default)
expect "alice token issue" '^\| project_id' os "${alice[@]}" token issue
refuse "wrong password is 401" 'authentication|401' os --os-username alice --os-password wrong --os-project-name demo-project token issue
refuse "alice cannot create users" 'not authorized|403' os "${alice[@]}" user create mallory
appcred=$(os "${alice[@]}" application credential create ci-cred -f value -c id -c secret 2>&1)
if [ "$(wc -l <<<"$appcred")" = 2 ]; then pass=$((pass+1)); echo "ok   application credential create"
else fail=$((fail+1)); echo "FAIL application credential create"; echo "$appcred"; fi
ac_id=$(sed -n 1p <<<"$appcred"); ac_secret=$(sed -n 2p <<<"$appcred")
expect "authenticate with the application credential" '^\| project_id' env -u OS_USERNAME -u OS_PASSWORD -u OS_PROJECT_NAME -u OS_USER_DOMAIN_NAME -u OS_PROJECT_DOMAIN_NAME \
  "$OPENSTACK" --os-auth-type v3applicationcredential --os-application-credential-id="$ac_id" --os-application-credential-secret="$ac_secret" token issue
expect "application credential list" 'ci-cred' os "${alice[@]}" application credential list

# Revoke a token and see it refused.
tok=$(os token issue -f value -c id)
check "token revoke" os token revoke "$tok"
refuse "revoked token is refused" 'Failed to validate token|401|Unauthorized' env -u OS_USERNAME -u OS_PASSWORD -u OS_USER_DOMAIN_NAME \
  "$OPENSTACK" --os-auth-type token --os-token "$tok" project list

# Clean up like an operator would.
check "group delete" os group delete devs
check "user delete" os user delete alice
check "project delete" os project delete demo-project

if grep -iE 'password_hash|bcrypt-sha256\$' "$log" >/dev/null; then
  fail=$((fail+1)); echo "FAIL secrets appear in the server log"
else pass=$((pass+1)); echo "ok   no secrets in the server log"; fi

echo "identity CLI: $pass passed, $fail failed"
[ "$fail" = 0 ]
