#!/bin/sh
# The upstream part of the packages' versions: 0~git<commit date>.<hash>
# (the changelog entry names `git describe --dirty`; the version stays
# short: lintian's limit on file names is 80 characters).
cd "$(dirname "$0")/.." || exit 1
d=$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null) || d=
h=$(git rev-parse --short=7 HEAD 2>/dev/null) || h=
if [ -z "$h" ]; then echo "0~unknown"; exit 0; fi
echo "0~git$d.$h"
