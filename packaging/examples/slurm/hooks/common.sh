# shellcheck shell=sh
# common.sh: settings and helpers shared by the Slurm hooks of hasync. Sourced by
# on-promote.sh, on-demote.sh and probe.sh, never run by itself.
#
# Every setting below has its production default and can be changed from hasync's
# environment, e.g. `systemctl edit hasync`, then under [Service]:
#     Environment=SLURMHA_START_TIMEOUT_S=60
# The names start with SLURMHA_ because hasync removes every HASYNC_* variable from the
# environment it gives its hooks before it adds its own (HASYNC_ROLE, HASYNC_EPOCH,
# HASYNC_REASON, HASYNC_PEER): a setting named HASYNC_* would never arrive.

# Slurm's own variable: the slurm.conf that scontrol and slurmctld read.
: "${SLURM_CONF:=/etc/slurm/slurm.conf}"
export SLURM_CONF
# How slurmctld is started and stopped:
#   systemd  `systemctl start|stop` of SLURMHA_UNIT, which carries the BindsTo= coupling
#            to hasync.service (slurmctld.service.d/hasync.conf). Use this in production.
#   direct   the hooks run /usr/sbin/slurmctld themselves (it daemonizes and writes the
#            SlurmctldPidFile of slurm.conf) and stop it by that pid: for hosts without
#            systemd, and for tests/system/slurm_failover_test.cpp. Nothing then stops
#            slurmctld when hasync dies; on a host with systemd use systemd.
: "${SLURMHA_CONTROL:=systemd}"
: "${SLURMHA_UNIT:=slurmctld.service}"
# This host's name as slurm.conf's SlurmctldHost lines write it. slurmctld itself compares
# them with the short host name (`hostname -s`).
: "${SLURMHA_HOST:=$(hostname -s)}"
# hasync's sync.state_dir: where its persisted role is.
: "${SLURMHA_STATE_DIR:=/var/lib/hasync}"
# Bounds, in seconds: waiting for slurmctld to answer and take control after a start, and
# to be gone after a stop. A wait that has begun may overrun its bound by one bounded
# call; keep on_promote's timeout_ms above SLURMHA_START_TIMEOUT_S + 15 s and on_demote's
# above SLURMHA_STOP_TIMEOUT_S + 10 s (hasync.toml: 50 s and 30 s).
: "${SLURMHA_START_TIMEOUT_S:=30}"
: "${SLURMHA_STOP_TIMEOUT_S:=20}"
# One scontrol or sdiag call, bounded. They try every SlurmctldHost in turn, and a peer
# that is powered off costs slurm.conf's TCPTimeout (2 s by default) before this host's
# own answer is read. The callers that wait ask again after a bounded call fails.
: "${SLURMHA_SCONTROL_TIMEOUT_S:=5}"

case $SLURMHA_CONTROL in
  systemd | direct) ;;
  *)
    echo "slurm hooks: SLURMHA_CONTROL=$SLURMHA_CONTROL: want systemd or direct" >&2
    exit 64
    ;;
esac

SCONTROL=/usr/bin/scontrol
SDIAG=/usr/bin/sdiag
# Used by on-promote.sh in direct mode (shellcheck checks this file on its own too).
# shellcheck disable=SC2034
SLURMCTLD=/usr/sbin/slurmctld
SYSTEMCTL=/usr/bin/systemctl

# Each hook sets SLURMHA_HOOK (its hasync hook name) before it sources this file; the
# default labels the lines of a hand-run `. common.sh`.
: "${SLURMHA_HOOK:=slurm}"

say() {
  echo "$SLURMHA_HOOK: $*"
}

now_s() {
  date +%s
}

# The value of the first `KEY=value` line of slurm.conf (the key is case-insensitive, as
# Slurm reads it; comments and surrounding blanks are dropped). Keys given through an
# Include file are not seen: keep SlurmctldHost and SlurmctldPidFile in slurm.conf itself.
conf_value() {
  sed -n 's/#.*//; s/^[[:space:]]*//; s/[[:space:]]*$//; p' "$SLURM_CONF" |
    awk -v key="$1" 'BEGIN { k = tolower(key) }
      { eq = index($0, "="); if (eq > 0 && tolower(substr($0, 1, eq - 1)) == k) {
          print substr($0, eq + 1); exit } }'
}

# This host's position among slurm.conf's controllers: 0 is the controller Slurm calls
# primary, 1 and above its backups. The controllers are the SlurmctldHost lines in order;
# a slurm.conf without any uses the older form instead, ControlMachine (0) and
# BackupController (1), which Slurm still reads then. A name matches written short or
# long ("mu01" or "mu01.cluster"), with or without "(address)". Fails (with a message)
# when this host is not one of them: slurmctld would refuse to run here anyway.
#
# The counters start at 0 explicitly: an awk variable never assigned prints as the empty
# string, and `[ "" -gt 0 ]` is an error ("Illegal number") that made on-promote.sh
# complain on every promotion of the first-listed controller.
controller_index() {
  index=$(sed -n 's/#.*//; s/^[[:space:]]*//; s/[[:space:]]*$//; p' "$SLURM_CONF" |
    awk -v host="$SLURMHA_HOST" '
      function is_this_host(v, short) {
        sub(/^[[:space:]]*/, "", v); sub(/[(].*/, "", v); sub(/[[:space:]]*$/, "", v)
        split(v, short, ".")
        return v == host || short[1] == host
      }
      BEGIN { hosts = 0; found = -1; old = -1 }
      {
        eq = index($0, "="); if (eq == 0) next
        key = tolower(substr($0, 1, eq - 1)); sub(/[[:space:]]*$/, "", key)
        value = substr($0, eq + 1)
        if (key == "slurmctldhost") {
          if (found < 0 && is_this_host(value)) found = hosts
          hosts++
        } else if (key == "controlmachine" && old < 0 && is_this_host(value)) {
          old = 0
        } else if (key == "backupcontroller" && old < 0 && is_this_host(value)) {
          old = 1
        }
      }
      END {
        if (hosts > 0) { if (found < 0) exit 1; print found + 0; exit 0 }
        if (old < 0) exit 1
        print old + 0
      }') || {
    # On stderr: the caller captures stdout as the index (hasync logs both).
    say "$SLURMHA_HOST is not a SlurmctldHost (nor ControlMachine/BackupController) of $SLURM_CONF" >&2
    return 1
  }
  echo "$index"
}

# Succeeds only where hasync persisted role=primary: the check of
# packaging/examples/hooks/require-primary.sh, which slurmctld.service's drop-in runs as
# ExecStartPre=.
require_primary() {
  role=$(sed -n 's/^role=//p' "$SLURMHA_STATE_DIR/state" 2>/dev/null || true)
  [ "$role" = primary ] && return 0
  say "hasync's persisted role here is '${role:-unknown}' ($SLURMHA_STATE_DIR/state), not primary"
  return 1
}

# This host's line of `scontrol ping` ("Slurmctld(backup) at mu02 is UP"). scontrol ping
# exits 0 when any controller answers, so the exit status says nothing about this one.
ping_line() {
  timeout -k 1 "$SLURMHA_SCONTROL_TIMEOUT_S" "$SCONTROL" ping 2>/dev/null |
    grep -F " at $SLURMHA_HOST is " ||
    echo "Slurmctld at $SLURMHA_HOST did not answer scontrol ping within ${SLURMHA_SCONTROL_TIMEOUT_S} s"
}

# Whether the slurmctld on this host answers at all (primary or backup mode). Leaves
# its ping line in LAST_PING.
answers() {
  LAST_PING=$(ping_line)
  case $LAST_PING in
    *" is UP") return 0 ;;
    *) return 1 ;;
  esac
}

# Whether a slurmctld of this cluster answers a request that a backup in standby mode
# refuses (sdiag: statistics only the controller in control keeps). Run after answers()
# on this host and with the peer's slurmctld stopped, that controller is this one. A
# client that meets a backup in standby mode retries for up to SlurmctldTimeout; the
# bound cuts that short, and the caller asks again.
in_control() {
  timeout -k 1 "$SLURMHA_SCONTROL_TIMEOUT_S" "$SDIAG" >/dev/null 2>&1
}

# The pid in slurm.conf's SlurmctldPidFile if that process is a live slurmctld (direct
# mode); nothing otherwise.
direct_pid() {
  pid_file=$(conf_value SlurmctldPidFile)
  pid=$(cat "${pid_file:-/run/slurmctld.pid}" 2>/dev/null || true)
  case $pid in '' | *[!0-9]*) return 0 ;; esac
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = slurmctld ]; then
    echo "$pid"
  fi
}

running() {
  if [ "$SLURMHA_CONTROL" = systemd ]; then
    "$SYSTEMCTL" is-active --quiet "$SLURMHA_UNIT"
  else
    [ -n "$(direct_pid)" ]
  fi
}
