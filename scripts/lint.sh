#!/usr/bin/env bash
# House rules that a compiler does not check (STYLE.md R23): banned functions in src/.
set -u
banned='\b(sprintf|vsprintf|strcpy|strcat|strncpy|strtok|gets|atoi|atof|atol|alloca|rand|srand|localtime|gmtime|system|popen)\s*\('
bad=$(grep -rnE "$banned" src --include='*.c' --include='*.h' | grep -v '^\S*:\s*/\?\*' || true)
conv=$(grep -rnE '\b(sscanf|strto[a-z]+)\s*\(' src --include='*.c' | grep -v '^src/util/parse.c' || true)
rc=0
[ -n "$bad" ] && { echo "lint: banned functions:"; echo "$bad"; rc=1; }
[ -n "$conv" ] && { echo "lint: sscanf/strto* outside src/util/parse.c:"; echo "$conv"; rc=1; }
[ $rc -eq 0 ] && echo "lint: ok"
exit $rc
