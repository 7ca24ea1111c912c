#!/bin/sh
# fence-ipmi.sh: a fence hook for hasync. It powers the peer off through its BMC (IPMI over
# LAN) and exits 0 only once the BMC reports the chassis off. The standby runs it before it
# promotes without the old primary's confirmation (docs/FAILOVER.md): then the old primary
# is certainly not running its scheduler, whatever the network between the two does.
#
# Usage:   fence-ipmi.sh BMC_HOST BMC_USER PASSWORD_FILE
#          PASSWORD_FILE holds the BMC password on its first line; keep it mode 0600,
#          owned by root, e.g. /etc/hasync/bmc-mu02.pass.
# Needs:   ipmitool (Debian package ipmitool); the BMC reachable from this node on its own
#          management network, not only through the link that may be the one that failed.
# Exit:    0  the peer's chassis is off (it was already off, or it went off)
#          1  the BMC did not confirm power off within 30 s (hasync then does not
#             promote, and tries again a window later)
#          64 bad command line
#
# It powers off ("chassis power off"), it does not reset or cycle: a peer that boots
# again comes back as a standby (hasync never fails back by itself), but only an operator
# should decide when. Give the hook a timeout_ms of at least 45000.
set -eu

if [ $# -ne 3 ]; then
  echo "usage: fence-ipmi.sh BMC_HOST BMC_USER PASSWORD_FILE" >&2
  exit 64
fi
bmc=$1
user=$2
password_file=$3
ipmitool=/usr/bin/ipmitool
if [ ! -x "$ipmitool" ]; then
  echo "fence: $ipmitool is missing (apt-get install ipmitool); not safe to promote"
  exit 1
fi

# The whole hook ends within 30 s; each ipmitool call within 5 s, so a BMC that does not
# answer cannot hold the hook until hasync kills it.
deadline=$(($(date +%s) + 30))
ipmi() {
  timeout 5 "$ipmitool" -I lanplus -H "$bmc" -U "$user" -f "$password_file" "$@"
}

# "Chassis Power is on" / "Chassis Power is off".
power_is_off() {
  case $(ipmi chassis power status 2>&1) in
    *"Power is off"*) return 0 ;;
    *) return 1 ;;
  esac
}

if power_is_off; then
  echo "fence: $bmc reports the peer already off (peer ${HASYNC_PEER:-?})"
  exit 0
fi
echo "fence: powering off the peer ${HASYNC_PEER:-?} through $bmc"
ipmi chassis power off || echo "fence: power off request to $bmc failed; checking the state"
while [ "$(date +%s)" -lt "$deadline" ]; do
  if power_is_off; then
    echo "fence: $bmc confirms power off"
    exit 0
  fi
  sleep 2
done
echo "fence: $bmc did not confirm power off; not safe to promote"
exit 1
