#!/bin/sh
# require-primary.sh: succeeds only on the node whose hasync holds the primary role, so
# that a scheduler is never started by hand (or by a stray unit dependency) on the
# standby. The recipes run it twice: as ExecStartPre= of the scheduler's systemd unit (the
# drop-in), and from their on_promote hook before they start the scheduler.
#
# Usage:   require-primary.sh [STATE_DIR]     (hasync's sync.state_dir, default
#                                              /var/lib/hasync)
# Exit:    0  <STATE_DIR>/state says role=primary
#          1  it says role=standby, or there is no state yet (a node that never ran)
#          2  the state file cannot be read
#
# It reads the role hasync persisted (temp + fsync + rename, docs/FAILOVER.md): on a
# promotion, hasync writes role=primary before it runs on_promote, so the hook's own start
# passes; on a demotion it runs on_demote first, which stops the scheduler anyway. The file
# is read, never written, and hasync need not be running (a node whose hasync is down keeps
# the role it had; the BindsTo= coupling stops the scheduler with hasync anyway).
set -eu

state_dir=${1:-/var/lib/hasync}
state=$state_dir/state
if [ ! -e "$state" ]; then
  echo "require-primary: $state does not exist: hasync never ran here; not starting the scheduler"
  exit 1
fi
if [ ! -r "$state" ]; then
  echo "require-primary: cannot read $state"
  exit 2
fi
role=$(sed -n 's/^role=//p' "$state")
if [ "$role" = primary ]; then
  exit 0
fi
echo "require-primary: hasync's role on this node is '${role:-unknown}', not primary:" \
  "the scheduler runs only where hasync is primary (see 'hasync status')"
exit 1
