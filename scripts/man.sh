#!/usr/bin/env bash
# make man: man pages generated from the same text as --help (the cmd_*_usage strings), so
# the two cannot drift. Writes build/man/airlock.1 and build/man/airlock-CMD.1.
set -euo pipefail
bin=${AIRLOCK:-./airlock}
out=${1:-build/man}
mkdir -p "$out"
ver=$("$bin" --version | awk '{print $2}')
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}" +%Y-%m-%d)
esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/"; }
page() { # name section-title summary body-file
  {
    printf '.TH "%s" 1 "%s" "airlock %s" "airlock manual"\n' "$(echo "$1" | tr a-z A-Z)" "$date" "$ver"
    printf '.SH NAME\n%s \\- %s\n' "$1" "$2"
    printf '.SH DESCRIPTION\n.nf\n'
    esc < "$3"
    printf '.fi\n.SH SEE ALSO\nairlock(1)\n'
  } > "$out/$1.1"
}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$bin" --help > "$tmp"
page airlock "carry LLMs into air-gapped networks and serve them there" "$tmp"
"$bin" --help | awk '/^Commands:/{on=1;next} on&&/^  [a-z]/{print $1}' | while read -r cmd; do
  summary=$("$bin" --help | awk -v c="$cmd" '$1==c {$1=""; sub(/^ +/,""); print}')
  "$bin" help "$cmd" > "$tmp"
  page "airlock-$cmd" "$summary" "$tmp"
done
ls "$out"
