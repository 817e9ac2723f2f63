#!/usr/bin/zsh -f
# usage: zsh-complete.zsh FPATH_DIR LINE...
# Starts an interactive zsh on a pseudo-terminal (zsh/zpty) with compinit and FPATH_DIR first
# in $fpath, types each LINE followed by TAB, and prints the candidates the completion
# system offered for it (every compadd that adds matches is recorded), one per line, then
# "--" after each LINE.
zmodload zsh/zpty || exit 77
dir=$1; shift
out=$(mktemp -d) || exit 1
trap 'zpty -d c 2>/dev/null; rm -rf $out' EXIT

cat >$out/init.zsh <<INIT
PS1='' PROMPT='' RPROMPT='' LISTMAX=100000
fpath=($dir \$fpath)
autoload -Uz compinit && compinit -u -D
zstyle ':completion:*' list-prompt ''
zstyle ':completion:*' menu no
compadd() {
  if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "\$@"; return; fi
  local -a __hits
  builtin compadd -A __hits "\$@"
  (( \$#__hits )) && print -rl -- \$__hits >>$out/hits
  builtin compadd "\$@"
}
# TAB runs the completion system, then records that it ran: the driver types nothing more
# until then (zsh may cut a completion short when more input is already waiting)
_sfs_tab() { _main_complete; local r=\$?; print -r -- tab >>$out/tabs; return r }
zle -C sfs-tab complete-word _sfs_tab
bindkey '^I' sfs-tab
print -r -- ready >$out/ready
INIT

zpty c "zsh -f -i"
zpty -w c "source $out/init.zsh"
wait_for() { # $1: file with the marker line; $2: how many lines it must have (default 1)
  local i
  for i in {1..400}; do
    zpty -r -t c junk 2>/dev/null
    [[ -s $1 && ${#${(f)"$(<$1)"}} -ge ${2:-1} ]] && return 0
    sleep 0.05
  done
  print -u2 "zsh-complete: no answer from the completion shell"; exit 1
}
wait_for $out/ready
n=0
for line in "$@"; do
  (( n++ ))
  : >$out/hits
  zpty -w -n c "$line"$'\t'
  wait_for $out/tabs $n
  # the TAB is handled: clear the line, then record that it is done
  zpty -w -n c $'\x15'"print -r -- done >$out/done.$n"$'\n'
  wait_for $out/done.$n
  sort -u $out/hits
  print -r -- --
done
