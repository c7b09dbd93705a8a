#!/usr/bin/env bash
# End-to-end networking checks with Debian's unmodified python3-openstackclient
# against a real `nimbus up` on a temp data dir and free ports, done the way
# a new user would. Prints "N passed, M failed" and fails if any did.
# As root the host's networking agent runs too (prefix ncli, removed on
# exit), so the checks also cover what it realises on the host.
if [ "$(id -u)" = 0 ]; then export NIMBUS_NETWORK_AGENT=1; fi
# shellcheck source=test/cli/lib.sh
source "$(dirname "$0")/lib.sh"

expect "catalog lists the network service" 'neutron +\| network' os catalog list
expect "extensions include the router extension" 'router' os extension list --network -f value -c Alias
check  "external network (admin)" os network create --external --provider-network-type flat --provider-physical-network public public
check  "external subnet" os subnet create --network public --subnet-range 203.0.113.0/24 --no-dhcp public-v4
check  "network create" os network create private
expect "tenant network is vxlan with MTU 1450" 'mtu +\| 1450' os network show private
check  "subnet create" os subnet create --network private --subnet-range 10.0.0.0/24 --dns-nameserver 10.0.0.2 private-v4
check  "IPv6 subnet create" os subnet create --network private --ip-version 6 --ipv6-ra-mode slaac --ipv6-address-mode slaac --subnet-range fd00:1::/64 private-v6
refuse "overlapping subnet refused" 'overlaps|400|BadRequest' os subnet create --network private --subnet-range 10.0.0.128/25 overlap
refuse "invalid CIDR refused" '400|[Ii]nvalid' os subnet create --network private --subnet-range 10.0.0.300/24 bad
check  "router create" os router create r1
check  "router set --external-gateway" os router set --external-gateway public r1
expect "router gateway has an external address" '203\.0\.113\.' os router show r1 -f json -c external_gateway_info
check  "router add subnet" os router add subnet r1 private-v4
check  "port create with a fixed IP" os port create --network private --fixed-ip subnet=private-v4,ip-address=10.0.0.50 p1
refuse "the same IP again is a conflict" '409|[Aa]lready|in use' os port create --network private --fixed-ip subnet=private-v4,ip-address=10.0.0.50 p2
refuse "an IP outside the subnet is refused" '400|[Ii]nvalid|not.*subnet' os port create --network private --fixed-ip subnet=private-v4,ip-address=192.168.9.9 p3
check  "floating ip create" os floating ip create public
fip=$(os floating ip list -f value -c "Floating IP Address" | head -1)
check  "floating ip set --port" os floating ip set --port p1 "$fip"
expect "floating ip is associated with the port's address" '10\.0\.0\.50' os floating ip show "$fip"
if [ "$NIMBUS_NETWORK_AGENT" = 1 ]; then
  host=$(hostname)
  eventually "network agent list: DHCP, L3 and Linux bridge agents alive" 'DHCP agent True.*|L3 agent True' \
    sh -c "$OPENSTACK network agent list -f value -c 'Agent Type' -c Alive | sort | tr '\n' '|'"
  eventually "the agent built the router's namespace" "^$NIMBUS_NETWORK_AGENT_PREFIX-r-" ip netns list
  eventually "the agent built the DHCP server's namespace" "^$NIMBUS_NETWORK_AGENT_PREFIX-d-" ip netns list
  check  "port bound to this host" os port create --network private --host "$host" --device-owner compute:nova --device vm-1 pvm
  eventually "a bound port goes ACTIVE once the agent wired it" '^ACTIVE$' os port show pvm -f value -c status
  check  "bound port delete" os port delete pvm
else
  echo "note: not root, so the networking agent is not run and its checks are left out"
fi
refuse "floating ip from a non-external network refused" '400|[Bb]ad|external' os floating ip create private
expect "each project has a default security group" 'default' os security group list
check  "security group create" os security group create web
check  "security group rule create" os security group rule create --protocol tcp --dst-port 80 --remote-ip 0.0.0.0/0 web
refuse "duplicate rule is a conflict" '409|[Ee]xists|[Dd]uplicate' os security group rule create --protocol tcp --dst-port 80 --remote-ip 0.0.0.0/0 web
refuse "bad port range refused" '400|[Ii]nvalid' os security group rule create --protocol tcp --dst-port 90:80 web
refuse "network with ports in use cannot be deleted" '409|[Ii]n use|InUse' os network delete private
check  "floating ip unset --port" os floating ip unset --port "$fip"
# `openstack quota set` also needs a compute endpoint in this client
# version; until compute exists, set the network quota through the API.
net_url=$(sed -n 's/^  network: *\(http[^ ]*\) *$/\1/p' "$work/up.out" | head -1)
token=$(os token issue -f value -c id)
project_id=$(os project show admin -f value -c id)
code=$(curl -s -o "$work/quota.json" -w '%{http_code}' -X PUT -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
  -d '{"quota": {"network": 3}}' "$net_url/v2.0/quotas/$project_id")
if [ "$code" = 200 ] && grep -q '"network": *3' "$work/quota.json"; then ok "network quota set through the API"
else bad "network quota set: HTTP $code $(cat "$work/quota.json")"; fi
expect "quota list --network shows it" '\| +3 +\|' os quota list --network --project admin
check  "network create within quota" os network create n2
refuse "quota exceeded" "Quota exceeded|409|OverQuota" os network create n3
check  "cleanup: floating ip, port, router interface" sh -c "$OPENSTACK floating ip delete $fip && $OPENSTACK port delete p1 && \
  $OPENSTACK router remove subnet r1 private-v4 && $OPENSTACK router delete r1"
check  "network delete" os network delete private

report network
