#!/bin/sh
# on-promote.sh: hasync's on_promote hook for PBS (TORQUE or OpenPBS). hasync has just made
# this node primary; the hook starts the PBS server here through systemd and returns once
# that server answers `qstat -B`.
#
# hasync runs it after it persisted the new epoch and role=primary, with HASYNC_ROLE,
# HASYNC_EPOCH, HASYNC_REASON and HASYNC_PEER in its environment (docs/FAILOVER.md);
# settings: common.sh. Running it again is harmless: a server that already answers here is
# left alone.
#
# Exit:  0  the server runs here and answers qstat -B
#        1  it did not answer within PBSHA_START_TIMEOUT_S (hasync logs an error and stays
#           primary; the probe then fails, so the peer, if alive, sees this node stalled
#           and takes over)
#        2  refused: hasync's persisted role on this node is not primary
set -eu
PBSHA_HOOK=on_promote
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

say "epoch ${HASYNC_EPOCH:-?}, peer ${HASYNC_PEER:-?}: ${HASYNC_REASON:-no reason given}"
require_primary || exit 2
if status=$(server_status); then
  say "the server already answers here: $status"
  exit 0
fi
deadline=$(($(now_s) + PBSHA_START_TIMEOUT_S))
say "starting $PBSHA_UNIT ($PBSHA_FLAVOR)"
# systemctl waits for the unit's start to finish (Type=forking); past 15 s it stops
# waiting, but the start goes on in systemd and the loop below keeps asking the server.
if ! timeout -k 1 15 "$SYSTEMCTL" start "$PBSHA_UNIT"; then
  say "systemctl start $PBSHA_UNIT has not finished or failed; see journalctl -u $PBSHA_UNIT"
fi
status="no answer yet"
while [ "$(now_s)" -lt "$deadline" ]; do
  if status=$(server_status); then
    say "the server answers: $status"
    exit 0
  fi
  sleep 1
done
say "the server did not answer qstat -B $PBSHA_SERVER within ${PBSHA_START_TIMEOUT_S} s: $status"
exit 1
