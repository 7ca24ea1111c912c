# bash completion for hasync(8): the verbs of app/main.cpp and each verb's options.
# Installed as /usr/share/bash-completion/completions/hasync (loaded on demand by
# bash-completion). The package test (tests/package/deb_test.sh) fails when `hasync
# --help` or `hasync VERB --help` lists a verb or an option missing here.

_hasync() {
  local cur prev words cword
  if declare -F _init_completion >/dev/null; then
    _init_completion || return
  else # without bash-completion's helpers: the plain variables
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    words=("${COMP_WORDS[@]}")
    cword=$COMP_CWORD
  fi

  local verbs="keygen check-config run status switchover history verify recover"
  local verb="" i
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      -*) ;;
      *) verb=${words[i]}; break ;;
    esac
  done

  # Values of the options that take one.
  case $prev in
    -c | --config)
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return
      ;;
    --initial-role)
      mapfile -t COMPREPLY < <(compgen -W "primary standby" -- "$cur")
      return
      ;;
    --timeout-ms | --rounds)
      return # a number: nothing to offer
      ;;
  esac

  local opts
  case $verb in
    "") opts="--help --version" ;;
    keygen) opts="--help" ;;
    check-config | recover) opts="--config --help" ;;
    run) opts="--config --initial-role --help" ;;
    status | history) opts="--config --json --help" ;;
    switchover) opts="--config --timeout-ms --help" ;;
    verify) opts="--config --json --timeout-ms --rounds --repair --help" ;;
    *) return ;;
  esac

  if [[ -z $verb && $cur != -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$verbs" -- "$cur")
  elif [[ $verb == keygen && $cur != -* ]]; then
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$cur") # the new key file's path
  else
    mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
  fi
}
complete -F _hasync hasync
