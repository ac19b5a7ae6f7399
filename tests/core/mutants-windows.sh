#!/bin/sh
# make windows-core-mutants: tests/core/mutants-windows.py under Wine, with
# the prefix and wineserver of tests/windows/wine.sh.
# Usage: WIN_DIR=build/windows tests/core/mutants-windows.sh [name-substring]
here=$(cd "$(dirname "$0")" && pwd)
WIN_DIR=${WIN_DIR:-$here/../../build/windows}
mkdir -p "$WIN_DIR"
. "$here/../windows/wine.sh"
if ! why=$(wine_boot); then
    echo "windows-core-mutants: Wine cannot start: $why"
    exit 1
fi
trap wine_stop EXIT
export WINE64
python3 "$here/mutants-windows.py" "$@"
