#!/bin/sh
# render.sh TEMPLATE [OVERRIDES] > OUT
#
# The POSIX sh + awk twin of pipelines/stack/configs.py render(), for images without Python:
# ${NAME} and $NAME take the value of the environment variable NAME (an unset one is an
# error, as an unknown placeholder is there), $$ becomes a literal $, and anything else after a
# $ (such as Kafka's ${env:SEATFLOW_X} lookups) is left alone, as string.Template's
# safe_substitute leaves it.
# OVERRIDES, if given, holds key=value lines for the places where a container must differ from
# the local stack: each replaces the template's line with the same key where it stands, and
# keys the template lacks are appended.
set -eu
template=$1
overrides=${2:-}
rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT

awk '
{
    out = ""; rest = $0
    while ((at = index(rest, "$")) > 0) {
        out = out substr(rest, 1, at - 1); rest = substr(rest, at + 1)
        if (substr(rest, 1, 1) == "$") { out = out "$"; rest = substr(rest, 2); continue }
        if (match(rest, /^[{][A-Za-z_][A-Za-z0-9_]*[}]/)) name = substr(rest, 2, RLENGTH - 2)
        else if (match(rest, /^[A-Za-z_][A-Za-z0-9_]*/)) name = substr(rest, 1, RLENGTH)
        else { out = out "$"; continue }
        if (!(name in ENVIRON)) {
            printf "%s:%d: no value for placeholder %s\n", FILENAME, FNR, name > "/dev/stderr"
            failed = 1
        }
        out = out ENVIRON[name]; rest = substr(rest, RLENGTH + 1)
    }
    print out rest
}
END { exit failed }
' "$template" > "$rendered"

if [ -z "$overrides" ]; then
    cat "$rendered"
    exit 0
fi
awk '
function key(line) { sub(/^[ \t]+/, "", line); sub(/[ \t]*=.*/, "", line); return line }
function setting(line) { return line !~ /^[ \t]*(#|$)/ }
FILENAME == ARGV[1] { if (setting($0)) { k = key($0); over[k] = $0; order[++n] = k }; next }
setting($0) && (key($0) in over) { k = key($0); print over[k]; used[k] = 1; next }
{ print }
END { for (i = 1; i <= n; i++) if (!(order[i] in used)) print over[order[i]] }
' "$overrides" "$rendered"
