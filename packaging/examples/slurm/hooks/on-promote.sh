#!/bin/sh
# on-promote.sh: hasync's on_promote hook for Slurm. hasync has just made this controller
# primary; the hook starts slurmctld here and returns once that slurmctld controls the
# cluster.
#
# hasync runs it after it persisted the new epoch and role=primary, with HASYNC_ROLE,
# HASYNC_EPOCH, HASYNC_REASON and HASYNC_PEER in its environment (docs/FAILOVER.md);
# settings: common.sh. Running it again is harmless: a slurmctld already in control here
# is left alone.
#
# slurm.conf lists both controllers as SlurmctldHost lines, in the same order on every
# host. When this host is not the first of them, Slurm starts its slurmctld as a backup,
# which by itself would wait SlurmctldTimeout for the first one to fall silent; hasync has
# already decided (the peer is dead, fenced or has stopped its slurmctld), so the hook asks
# it to take control at once (`scontrol takeover`).
#
# Exit:  0  slurmctld runs here and controls the cluster
#        1  it did not start, answer or take control within SLURMHA_START_TIMEOUT_S
#           (hasync logs an error and stays primary; the probe then fails, so the peer,
#           if alive, sees this node stalled and takes over)
#        2  refused: hasync's persisted role here is not primary, or this host is not a
#           SlurmctldHost of slurm.conf
set -eu
SLURMHA_HOOK=on_promote
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

say "epoch ${HASYNC_EPOCH:-?}, peer ${HASYNC_PEER:-?}: ${HASYNC_REASON:-no reason given}"
require_primary || exit 2
index=$(controller_index) || exit 2
deadline=$(($(now_s) + SLURMHA_START_TIMEOUT_S))

# Runs `$@` once a second until it succeeds; no new try once the deadline has passed.
wait_until() {
  while [ "$(now_s)" -lt "$deadline" ]; do
    "$@" && return 0
    sleep 1
  done
  return 1
}

LAST_PING="no answer yet"
if running && answers && in_control; then
  say "slurmctld on $SLURMHA_HOST already controls the cluster ($LAST_PING)"
  exit 0
fi
if ! running; then
  say "starting slurmctld ($SLURMHA_CONTROL) from $(conf_value StateSaveLocation)"
  if [ "$SLURMHA_CONTROL" = systemd ]; then
    # The unit's ExecStartPre= runs require-primary.sh again; systemctl returns once
    # slurmctld runs (Type=simple), not once it answers.
    if ! timeout -k 1 15 "$SYSTEMCTL" start "$SLURMHA_UNIT"; then
      say "systemctl start $SLURMHA_UNIT failed; see journalctl -u $SLURMHA_UNIT"
      exit 1
    fi
  elif ! "$SLURMCTLD" </dev/null >/dev/null 2>&1; then
    # slurmctld daemonizes; a failure before that (a bad slurm.conf) is in its log file.
    say "$SLURMCTLD failed to start; see $(conf_value SlurmctldLogFile)"
    exit 1
  fi
fi
if ! wait_until answers; then
  say "slurmctld did not answer within ${SLURMHA_START_TIMEOUT_S} s: $LAST_PING"
  exit 1
fi
if [ "$index" -gt 0 ]; then
  # The request is handled even if scontrol gives up waiting for its answer (the backup
  # first tries to reach the other controller, TCPTimeout when that host is off).
  say "this host is SlurmctldHost #$index: asking its slurmctld to take control"
  timeout -k 1 "$SLURMHA_SCONTROL_TIMEOUT_S" "$SCONTROL" takeover "$index" >/dev/null 2>&1 ||
    say "scontrol takeover $index did not confirm; waiting for control all the same"
fi
if ! wait_until in_control; then
  say "slurmctld answers but did not take control within ${SLURMHA_START_TIMEOUT_S} s"
  exit 1
fi
say "slurmctld on $SLURMHA_HOST controls the cluster ($LAST_PING)"
exit 0
