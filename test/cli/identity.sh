#!/usr/bin/env bash
# End-to-end identity checks with Debian's unmodified python3-openstackclient
# against a real `nimbus up` on a temp data dir and a free port, done the way
# a new user would do them. Prints "N passed, M failed" and fails if any did.
# shellcheck source=test/cli/lib.sh
source "$(dirname "$0")/lib.sh"

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
if [ "$(wc -l <<<"$appcred")" = 2 ]; then ok "application credential create"
else bad "application credential create" "$appcred"; fi
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
  bad "secrets appear in the server log"
else ok "no secrets in the server log"; fi

report identity
