# shellcheck shell=sh
# common.sh: settings and helpers shared by the PBS hooks of hasync. Sourced by
# on-promote.sh, on-demote.sh and probe.sh, never run by itself.
#
# Every setting below has its production default and can be changed from hasync's
# environment, e.g. `systemctl edit hasync` then `[Service]` `Environment=PBSHA_FLAVOR=openpbs`.
# The names start with PBSHA_ because hasync removes every HASYNC_* variable from the
# environment it gives its hooks before it adds its own (HASYNC_ROLE, HASYNC_EPOCH,
# HASYNC_REASON, HASYNC_PEER): a setting named HASYNC_* would never arrive.

# Which PBS: "torque" (TORQUE 4-6: the unit pbs_server.service runs pbs_server alone) or
# "openpbs" (OpenPBS / PBS Professional: the unit pbs.service runs every daemon that
# /etc/pbs.conf enables on this host: server, scheduler, comm, and its data service).
: "${PBSHA_FLAVOR:=torque}"
case $PBSHA_FLAVOR in
  torque) : "${PBSHA_UNIT:=pbs_server.service}" ;;
  openpbs) : "${PBSHA_UNIT:=pbs.service}" ;;
  *)
    echo "pbs hooks: PBSHA_FLAVOR=$PBSHA_FLAVOR: want torque or openpbs" >&2
    exit 64
    ;;
esac
# The PBS server this node runs, as qstat -B names it: this host.
: "${PBSHA_SERVER:=$(hostname)}"
# hasync's sync.state_dir: where its persisted role is (require-primary.sh).
: "${PBSHA_STATE_DIR:=/var/lib/hasync}"
# Bounds, in seconds, on waiting for the server to answer after a start and to be gone
# after a stop. A wait that has begun may overrun its bound by one bounded call; keep
# on_promote's timeout_ms above PBSHA_START_TIMEOUT_S + 10 s and on_demote's above
# PBSHA_STOP_TIMEOUT_S + 10 s (hasync.toml: 50 s and 30 s).
: "${PBSHA_START_TIMEOUT_S:=30}"
: "${PBSHA_STOP_TIMEOUT_S:=20}"
# One qstat call, bounded.
: "${PBSHA_QSTAT_TIMEOUT_S:=5}"

# OpenPBS installs its commands under /opt/pbs, TORQUE built from source under /usr/local.
PATH=$PATH:/opt/pbs/bin:/opt/pbs/sbin:/usr/local/bin:/usr/local/sbin
export PATH
SYSTEMCTL=/usr/bin/systemctl

say() {
  echo "$PBSHA_HOOK: $*"
}

# Seconds since the epoch; deadlines are compared against it.
now_s() {
  date +%s
}

# The status line of this node's own server, from `qstat -B SERVER`; fails when that
# server does not answer within PBSHA_QSTAT_TIMEOUT_S.
server_status() {
  if out=$(timeout -k 1 "$PBSHA_QSTAT_TIMEOUT_S" qstat -B "$PBSHA_SERVER" 2>&1); then
    printf '%s\n' "$out" | tail -n 1
    return 0
  fi
  printf '%s\n' "${out:-qstat -B $PBSHA_SERVER: no answer within $PBSHA_QSTAT_TIMEOUT_S s}" | tail -n 1
  return 1
}

# Succeeds only where hasync persisted role=primary (the check of
# packaging/examples/hooks/require-primary.sh, which the unit's drop-in runs as
# ExecStartPre=).
require_primary() {
  role=$(sed -n 's/^role=//p' "$PBSHA_STATE_DIR/state" 2>/dev/null || true)
  [ "$role" = primary ] && return 0
  say "hasync's persisted role here is '${role:-unknown}' ($PBSHA_STATE_DIR/state), not primary"
  return 1
}

unit_active() {
  "$SYSTEMCTL" is-active --quiet "$PBSHA_UNIT"
}
