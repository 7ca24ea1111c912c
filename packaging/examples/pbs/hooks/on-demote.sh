#!/bin/sh
# on-demote.sh: hasync's on_demote hook for PBS (TORQUE or OpenPBS). This node stops being
# primary (a peer at a higher epoch, a DEMOTE_REQUEST, a switchover, or self-fencing after
# a failed quorum_check); the hook stops the PBS server here and returns once it is gone.
#
# The stop is the unit's own (TORQUE's pbs_server.service: qterm; OpenPBS's pbs.service:
# its init script, which also stops the data service), bounded by
# PBSHA_STOP_TIMEOUT_S; past it the unit's processes are killed (SIGKILL). Running it
# again, or with nothing running, is harmless. Settings: common.sh.
#
# Exit:  0  nothing of the unit runs any more
#        1  it still runs after the kill (hasync logs it; fence the node)
set -eu
PBSHA_HOOK=on_demote
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

say "epoch ${HASYNC_EPOCH:-?}, peer ${HASYNC_PEER:-?}: ${HASYNC_REASON:-no reason given}"
if ! unit_active; then
  say "$PBSHA_UNIT is not running"
  exit 0
fi
say "stopping $PBSHA_UNIT"
if timeout -k 1 "$PBSHA_STOP_TIMEOUT_S" "$SYSTEMCTL" stop "$PBSHA_UNIT" && ! unit_active; then
  say "$PBSHA_UNIT stopped"
  exit 0
fi
say "$PBSHA_UNIT still running after ${PBSHA_STOP_TIMEOUT_S} s: killing it"
"$SYSTEMCTL" kill --signal=SIGKILL "$PBSHA_UNIT" || true
timeout -k 1 5 "$SYSTEMCTL" stop "$PBSHA_UNIT" || true
if unit_active; then
  say "$PBSHA_UNIT is still active after SIGKILL"
  exit 1
fi
say "$PBSHA_UNIT killed"
exit 0
