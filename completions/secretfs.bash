# bash completion for secretfs(1).  Commands and flags are read from secretfs's own --help,
# so they follow the binary; secret names come from `secretfs list` (names only, never
# values), with the --store/--key-file/--config already on the command line; reload's
# mountpoints are the fuse.secretfs mounts in /proc/self/mountinfo.

_secretfs_help_commands()
{
    "$1" --help 2>/dev/null | awk '/^Commands:/ {on = 1; next} on && /^$/ {exit}
        on && /^  [a-z]/ {print $1}'
}

# The flags of one command: every flag in its usage lines (plus the store options when it
# says "[store options]"), and the flags that start its option lines.
_secretfs_help_flags()
{
    "$1" "$2" --help 2>/dev/null | awk '
        function flags(s) {
            while (match(s, /(^|[^A-Za-z0-9-])--?[A-Za-z][A-Za-z0-9-]*/)) {
                f = substr(s, RSTART, RLENGTH); sub(/^[^-]/, "", f); print f
                s = substr(s, RSTART + RLENGTH)
            }
        }
        usage && /^$/ {usage = 0}
        NR == 1 {usage = 1}
        usage {flags($0); if (/\[store options\]/) print "--store\n--key-file\n--config"; next}
        /^ +-/ {
            for (i = 1; i <= NF; i++) {
                if ($i !~ /^-/ && $i !~ /^[A-Z][A-Z_.,=\[\]]*,?$/) break
                if ($i ~ /^-/) flags($i)
            }
        }' | sort -u
}

_secretfs_names()
{
    local -a store_opts=()
    local i
    for ((i = 2; i < cword; i++)); do  # words, cword: _secretfs's, from _init_completion
        case ${words[i]} in
        --store | --key-file | --config) store_opts+=("${words[i]}" "${words[i + 1]}") ;;
        --store=* | --key-file=* | --config=*) store_opts+=("${words[i]}") ;;
        esac
    done
    "$1" list "${store_opts[@]}" 2>/dev/null | awk 'NR > 1 && NF {print $1}'
}

_secretfs_mountpoints()
{
    awk '{for (i = 7; i < NF; i++) if ($i == "-") {if ($(i + 1) == "fuse.secretfs") print $5; break}}' \
        /proc/self/mountinfo 2>/dev/null
}

_secretfs()
{
    local cur prev words cword
    _init_completion -s || return
    local bin=${words[0]} cmd=${words[1]} i positional=0

    if ((cword == 1)); then
        COMPREPLY=($(compgen -W "$(_secretfs_help_commands "$bin") --help --version" -- "$cur"))
        return
    fi
    case $prev in
    --store | --key-file | --config | --from-file | --secrets-file | --secret-mount | --socket | \
        --passphrase-file)
        _filedir
        return
        ;;
    --state | --volumes | --mount | --audit)
        _filedir -d
        return
        ;;
    --secrets | --timeout | --signal | --grace | --only | -o)
        return
        ;;
    esac
    if [[ $cmd == run ]]; then
        for ((i = 2; i < cword; i++)); do
            if [[ ${words[i]} == -- ]]; then
                _command_offset $((i + 1))
                return
            fi
        done
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_secretfs_help_flags "$bin" "$cmd")" -- "$cur"))
        [[ ${COMPREPLY-} == *= ]] && compopt -o nospace
        return
    fi
    for ((i = 2; i < cword; i++)); do
        case ${words[i]} in
        --store | --key-file | --config | --from-file | --secrets-file | --secret-mount | \
            --socket | --state | --volumes | --mount | --secrets | --timeout | --signal | \
            --grace | --only | -o | --passphrase-file | --audit) ((i++)) ;;
        -*) ;;
        *) ((positional++)) ;;
        esac
    done
    case $cmd in
    get | set)
        ((positional == 0)) &&
            COMPREPLY=($(compgen -W "$(_secretfs_names "$bin")" -- "$cur"))
        ;;
    rm)
        COMPREPLY=($(compgen -W "$(_secretfs_names "$bin")" -- "$cur"))
        ;;
    reload)
        COMPREPLY=($(compgen -W "$(_secretfs_mountpoints)" -- "$cur"))
        ;;
    mount | keygen)
        _filedir
        ;;
    esac
} &&
    complete -F _secretfs secretfs
