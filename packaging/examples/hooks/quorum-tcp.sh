#!/bin/bash
# quorum-tcp.sh: a quorum_check hook for hasync. It exits 0 when this node can still reach
# the rest of the cluster, meaning that one of the targets on the command line accepted a
# TCP connection. Both nodes run it when they lose each other (docs/FAILOVER.md): the
# isolated primary stops its scheduler when it fails, and the standby promotes only when
# it passes.
#
# Usage:   quorum-tcp.sh [-t SECONDS] HOST:PORT [HOST:PORT ...]
#          (an IPv6 address goes in brackets: [fd00::1]:22)
# Exit:    0  a target accepted a connection, each tried for at most SECONDS (default 1)
#          1  none did
#          64 bad command line
#
# Choose targets on the path between the two controllers, with a service that always
# listens: the gateway's or a third host's sshd (22), the slurmdbd host (6819), a few
# compute nodes' slurmd (6818) or pbs_mom (15002). Targets are tried one after the other,
# so give the hook a timeout_ms of at least (number of targets x SECONDS) + 1 s.
#
# Why TCP and not ping: packaging/hasync.service keeps only the capabilities hasync needs
# (no CAP_NET_RAW) and sets NoNewPrivileges=yes, and hooks inherit both. Debian's
# /usr/bin/ping carries the file capability cap_net_raw=ep; the kernel refuses to execute
# a file whose permitted capabilities the bounding set cannot grant (EPERM), so under that
# unit a quorum_check of ["/usr/bin/ping", ...] never passes. A TCP connect needs no
# privilege.
set -eu

per_target_s=1
if [ "${1:-}" = "-t" ]; then
  [ $# -ge 2 ] || { echo "quorum-tcp.sh: -t needs a number of seconds" >&2; exit 64; }
  per_target_s=$2
  shift 2
fi
case $per_target_s in
  '' | *[!0-9]* | 0) echo "quorum-tcp.sh: -t $per_target_s: want whole seconds >= 1" >&2; exit 64 ;;
esac
if [ $# -eq 0 ]; then
  echo "usage: quorum-tcp.sh [-t SECONDS] HOST:PORT [HOST:PORT ...]" >&2
  exit 64
fi

for target in "$@"; do
  host=${target%:*}
  port=${target##*:}
  host=${host#[}
  host=${host%]}
  case $port in
    '' | *[!0-9]*) echo "quorum-tcp.sh: $target: want HOST:PORT" >&2; exit 64 ;;
  esac
  # bash's /dev/tcp opens the connection; timeout bounds a SYN that nobody answers. The
  # single quotes are meant: the inner bash expands $0 and $1 (host, port), not this one.
  # shellcheck disable=SC2016
  if timeout "$per_target_s" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null; then
    echo "quorum: reached $target"
    exit 0
  fi
done
echo "quorum: none of $* accepted a connection within ${per_target_s} s each"
exit 1
