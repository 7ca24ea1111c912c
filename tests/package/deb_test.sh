#!/usr/bin/env bash
# The Debian package, built, checked and installed for real (docs/PACKAGING.md).
# cmake/hasync_package.cmake registers one CTest entry per step, label "package":
#
#   deb_test.sh build   BUILD_DIR          cpack -G DEB → BUILD_DIR/deb/hasync_<v>_<arch>.deb
#   deb_test.sh lintian BUILD_DIR          lintian reports no error (warnings listed)
#   deb_test.sh install BUILD_DIR VERSION  dpkg -i, then every installed piece checked;
#                                          dpkg -r leaves only the conffile; dpkg -P
#                                          leaves nothing
#
# A step that cannot run here (not root, no dpkg, no lintian, hasync already on this
# machine) exits 77 with the reason on stderr: CTest reports it as skipped, never passed.
#
# `install` writes to the real /usr, /etc and /lib of this machine. It refuses (skips)
# when any file of the package already exists there (a hasync installed by hand or by
# `cmake --install`, an administrator's /etc/hasync/hasync.toml), so it never overwrites
# or later removes what it did not install; a trap purges the package on every exit; and
# a lock keeps two runs on one machine from installing at the same time.
set -euo pipefail

mode=${1:?usage: deb_test.sh build|lintian|install BUILD_DIR [VERSION]}
build_dir=$(cd "${2:?BUILD_DIR}" && pwd)
deb_dir=$build_dir/deb

skip() {
  echo "SKIPPED: $*" >&2
  exit 77
}
fail() {
  echo "FAILED: $*" >&2
  exit 1
}
need() { # need TOOL PACKAGE
  command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed (Debian package $2; scripts/install-deps.sh installs it)"
}

# The one .deb of this build; fails when there is none or several.
the_deb() {
  local debs=("$deb_dir"/hasync_*.deb)
  [[ -f ${debs[0]} ]] || fail "no package in $deb_dir (the DebPackage.Build test makes it)"
  ((${#debs[@]} == 1)) || fail "several packages in $deb_dir: ${debs[*]}"
  echo "${debs[0]}"
}

build() {
  need dpkg-shlibdeps dpkg-dev
  need cpack cmake
  rm -rf "$deb_dir"
  cpack -G DEB --config "$build_dir/CPackConfig.cmake" || fail "cpack -G DEB failed"
  local deb
  deb=$(the_deb)
  echo "built $deb ($(stat -c %s "$deb") bytes)"
  dpkg-deb --info "$deb"
  dpkg-deb --contents "$deb"
}

lintian_check() {
  need lintian lintian
  local deb out rc=0
  deb=$(the_deb)
  # --fail-on error: warnings are printed and listed in docs/PACKAGING.md, errors fail.
  out=$(lintian --fail-on error --display-info --no-tag-display-limit "$deb" 2>&1) || rc=$?
  printf '%s\n' "$out"
  echo "lintian: $(grep -c '^E:' <<<"$out" || true) error(s), $(grep -c '^W:' <<<"$out" || true) warning(s), $(grep -c '^I:' <<<"$out" || true) info"
  ((rc == 0)) || fail "lintian reports errors (exit $rc)"
}

# Every path the package ships as "TYPE PATH" (d for a directory, - for a file, l for a
# symlink), from dpkg-deb --contents ("drwxr-xr-x root/root 0 2026-12-04 15:52 ./usr/").
package_paths() {
  dpkg-deb --contents "$1" | awk '{ t = substr($1, 1, 1); p = substr($6, 2); sub("/$", "", p)
                                    if (p != "") print t, p }'
}

# hasync's verbs and, for one verb, its long options, as `hasync --help` lists them.
help_verbs() {
  /usr/sbin/hasync --help | sed -n '/^Subcommands:/,$p' | awk 'NR > 1 && NF { print $1 }'
}
help_options() {
  /usr/sbin/hasync "$1" --help | grep -o -- '--[a-z][a-z-]*' | sort -u
}

install_check() {
  local version=${3:?VERSION}
  [[ $(id -u) == 0 ]] || skip "must run as root: it installs the package with dpkg -i"
  need dpkg dpkg
  need systemd-analyze systemd
  local deb
  deb=$(the_deb)

  # One run at a time on this machine (the lock is released when the script exits).
  exec 9>/run/lock/hasync-deb-test.lock
  flock -w 600 9 || fail "another package test holds /run/lock/hasync-deb-test.lock"

  if dpkg-query -W -f='${Status}' hasync 2>/dev/null | grep -qv 'not-installed'; then
    skip "a hasync package is already installed or not purged on this machine ($(dpkg-query -W -f='${Version} ${Status}' hasync)): not touching it"
  fi
  local -a files=() dirs_new=()
  local type p
  while read -r type p; do
    if [[ $type == d ]]; then
      [[ -e $p ]] || dirs_new+=("$p")
    else
      files+=("$p")
      [[ -e $p || -L $p ]] && skip "$p already exists on this machine (installed by hand or by cmake --install?): not overwriting it"
    fi
  done < <(package_paths "$deb")
  echo "package ships ${#files[@]} files; ${#dirs_new[@]} of its directories are new here"

  # From here on the package is purged whatever happens.
  trap 'dpkg -P hasync >/dev/null 2>&1 || true' EXIT

  dpkg -i "$deb" || fail "dpkg -i $deb"
  [[ $(dpkg-query -W -f='${Status} ${Version}' hasync) == "install ok installed $version" ]] ||
    fail "dpkg-query: $(dpkg-query -W -f='${Status} ${Version}' hasync), expected version $version installed"

  # The binary runs and names the project version.
  local got
  got=$(/usr/sbin/hasync --version)
  [[ $got == "hasync $version" ]] || fail "hasync --version printed '$got', expected 'hasync $version'"
  echo "ok: $got"

  # The installed unit, against the installed binary.
  local out
  out=$(systemd-analyze verify --man=no /lib/systemd/system/hasync.service 2>&1) ||
    fail "systemd-analyze verify: $out"
  [[ -z $out ]] || fail "systemd-analyze verify printed warnings: $out"
  echo "ok: systemd-analyze verify /lib/systemd/system/hasync.service"

  # The conffile is the commented example, and dpkg knows it as a conffile.
  cmp /etc/hasync/hasync.toml /usr/share/doc/hasync/examples/hasync.toml ||
    fail "/etc/hasync/hasync.toml differs from the shipped example"
  dpkg-query -W -f='${Conffiles}\n' hasync | grep -q '^ /etc/hasync/hasync.toml ' ||
    fail "/etc/hasync/hasync.toml is not a conffile"
  echo "ok: /etc/hasync/hasync.toml is a conffile"

  # The manual page renders without warnings and describes every verb and option.
  local page warnings verb opt
  warnings=$(MANWIDTH=80 man --warnings -l /usr/share/man/man8/hasync.8.gz 2>&1 >/dev/null) ||
    fail "man -l hasync.8.gz failed: $warnings"
  [[ -z $warnings ]] || fail "groff warnings in hasync(8): $warnings"
  page=$(MANWIDTH=80 man -l /usr/share/man/man8/hasync.8.gz)
  local verbs
  verbs=$(help_verbs)
  [[ -n $verbs ]] || fail "hasync --help lists no verbs"
  for verb in $verbs; do
    grep -q "^       $verb\b" <<<"$page" || fail "hasync(8) has no entry for the verb $verb"
    for opt in $(help_options "$verb"); do
      grep -q -- "$opt" <<<"$page" || fail "hasync(8) does not mention $verb's option $opt"
    done
  done
  echo "ok: hasync(8) covers the verbs ${verbs//$'\n'/ } and their options"

  # The bash completion offers every verb, and each verb's options.
  local comp=/usr/share/bash-completion/completions/hasync
  complete_words() { # complete_words WORD... → what <TAB> after the last word offers
    bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
             _hasync; printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@"
  }
  local offered
  offered=$(complete_words hasync "")
  for verb in $verbs; do
    grep -qx -- "$verb" <<<"$offered" || fail "bash completion does not offer the verb $verb"
    offered_opts=$(complete_words hasync "$verb" --)
    for opt in $(help_options "$verb"); do
      grep -qx -- "$opt" <<<"$offered_opts" || fail "bash completion of '$verb' does not offer $opt"
    done
  done
  [[ $(complete_words hasync run --initial-role "") == $'primary\nstandby' ]] ||
    fail "bash completion of --initial-role does not offer primary and standby"
  echo "ok: bash completion offers every verb and option"

  # dpkg -r: nothing left but the conffile (and its directory).
  dpkg -r hasync || fail "dpkg -r hasync"
  [[ $(dpkg-query -W -f='${Status}' hasync) == "deinstall ok config-files" ]] ||
    fail "after dpkg -r: $(dpkg-query -W -f='${Status}' hasync), expected config-files"
  for p in "${files[@]}"; do
    [[ $p == /etc/hasync/hasync.toml ]] && continue
    [[ -e $p || -L $p ]] && fail "dpkg -r left $p"
  done
  [[ -f /etc/hasync/hasync.toml ]] || fail "dpkg -r removed the conffile /etc/hasync/hasync.toml"
  for p in "${dirs_new[@]}"; do
    [[ $p == /etc/hasync ]] && continue
    [[ -e $p ]] && fail "dpkg -r left the directory $p"
  done
  echo "ok: dpkg -r left only /etc/hasync/hasync.toml"

  # dpkg -P: the conffile goes too, and dpkg forgets the package.
  dpkg -P hasync || fail "dpkg -P hasync"
  [[ -e /etc/hasync/hasync.toml ]] && fail "dpkg -P left /etc/hasync/hasync.toml"
  for p in "${dirs_new[@]}"; do
    [[ -e $p ]] && fail "dpkg -P left the directory $p"
  done
  if dpkg-query -W -f='${Status}' hasync 2>/dev/null | grep -qv 'not-installed'; then
    fail "after dpkg -P dpkg still lists hasync: $(dpkg-query -W -f='${Status}' hasync)"
  fi
  echo "ok: dpkg -P left nothing"
}

case $mode in
  build) build ;;
  lintian) lintian_check ;;
  install) install_check "$@" ;;
  *) fail "unknown mode $mode" ;;
esac
