#!/bin/sh
# probe.sh: hasync's scheduler probe for Slurm. It passes only when the slurmctld on this
# host answers `scontrol ping` and the cluster's controller in control answers a request
# (sdiag) that a slurmctld in backup mode refuses: run on the primary, whose peer has no
# slurmctld, that controller is this host's.
#
# hasync runs it on the primary every probe.interval_ms, killed after probe.timeout_ms.
# While it fails the primary's beat stops, and the standby, after a window, asks this node
# to demote and takes over (docs/FAILOVER.md). The first line it prints travels in the lock
# record as the progress token; it names the jobs submitted so far (sdiag), so a slurmctld
# that answers but accepts no work still looks the same from one record to the next.
# Settings: common.sh.
#
# Exit:  0  this host's slurmctld answers and controls the cluster; 1 otherwise.
set -eu
SLURMHA_HOOK=probe
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

line=$(ping_line)
case $line in
  *" is UP") ;;
  *)
    echo "$line"
    exit 1
    ;;
esac
if ! stats=$(timeout -k 1 "$SLURMHA_SCONTROL_TIMEOUT_S" "$SDIAG" 2>&1); then
  echo "slurmctld on $SLURMHA_HOST answers but does not control the cluster (backup mode?)"
  exit 1
fi
submitted=$(printf '%s\n' "$stats" | sed -n 's/^Jobs submitted:[[:space:]]*//p' | head -n 1)
echo "$line; jobs submitted: ${submitted:-?}"
