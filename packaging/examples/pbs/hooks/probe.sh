#!/bin/sh
# probe.sh: hasync's scheduler probe for PBS (TORQUE or OpenPBS). It passes only when this
# node's own PBS server answers `qstat -B <this host>`; its first line of output is the
# server's status line, which hasync carries in the lock record as the progress token
# (the job counts in it move with the server's work).
#
# hasync runs it on the primary every probe.interval_ms, killed after probe.timeout_ms;
# while it fails the primary's beat stops and the standby, after a window, asks this node
# to demote and takes over (docs/FAILOVER.md). Settings: common.sh.
#
# Exit:  0  the local server answered; 1 it did not.
set -eu
PBSHA_HOOK=probe
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

if status=$(server_status); then
  echo "$status"
  exit 0
fi
echo "the PBS server on $PBSHA_SERVER does not answer: $status"
exit 1
