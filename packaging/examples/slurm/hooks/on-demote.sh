#!/bin/sh
# on-demote.sh: hasync's on_demote hook for Slurm. This controller stops being primary (a
# peer at a higher epoch, a DEMOTE_REQUEST, a switchover, or self-fencing after a failed
# quorum_check); the hook stops slurmctld here and returns once it is gone.
#
# slurmctld saves its state on SIGTERM before it exits (slurmctld(8)); on a switchover
# hasync replicates that last save before it hands over. The stop is bounded by
# SLURMHA_STOP_TIMEOUT_S, past which slurmctld is killed (SIGKILL): a controller that
# cannot stop must not keep the primary role waiting. Running it again, or with no
# slurmctld running, is harmless. Settings: common.sh.
#
# Exit:  0  no slurmctld runs here any more
#        1  one still runs after SIGKILL (hasync logs it; fence this host)
set -eu
SLURMHA_HOOK=on_demote
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

say "epoch ${HASYNC_EPOCH:-?}, peer ${HASYNC_PEER:-?}: ${HASYNC_REASON:-no reason given}"
if ! running; then
  say "slurmctld is not running here"
  exit 0
fi
deadline=$(($(now_s) + SLURMHA_STOP_TIMEOUT_S))
say "stopping slurmctld ($SLURMHA_CONTROL)"
if [ "$SLURMHA_CONTROL" = systemd ]; then
  if timeout -k 1 "$SLURMHA_STOP_TIMEOUT_S" "$SYSTEMCTL" stop "$SLURMHA_UNIT" && ! running; then
    say "slurmctld stopped"
    exit 0
  fi
  say "slurmctld still running after ${SLURMHA_STOP_TIMEOUT_S} s: killing it"
  "$SYSTEMCTL" kill --signal=SIGKILL "$SLURMHA_UNIT" || true
  timeout -k 1 5 "$SYSTEMCTL" stop "$SLURMHA_UNIT" || true
else
  pid=$(direct_pid)
  # SIGCONT after SIGTERM, as systemd does: a stopped slurmctld can then shut down cleanly.
  kill -TERM "$pid" 2>/dev/null || true
  kill -CONT "$pid" 2>/dev/null || true
  while [ -n "$(direct_pid)" ] && [ "$(now_s)" -lt "$deadline" ]; do
    sleep 1
  done
  if [ -z "$(direct_pid)" ]; then
    say "slurmctld (pid $pid) stopped"
    exit 0
  fi
  say "slurmctld (pid $pid) still running after ${SLURMHA_STOP_TIMEOUT_S} s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 1
fi
if running; then
  say "slurmctld is still running after SIGKILL"
  exit 1
fi
say "slurmctld killed"
exit 0
