# tests/windows/wine.sh: Wine for the Windows suites, sourced by run.sh and
# regress.sh.  Debian 12's wine64 (8.0), 64-bit only, headless and isolated:
#   - WINEPREFIX is $WIN_DIR/wine (under build/), made once by `wineboot -i`
#     and reused (stamp .rp-booted);
#   - WINEDEBUG=-all, no X display (DISPLAY and WAYLAND_DISPLAY unset), no
#     Mono or Gecko download prompt (mscoree and mshtml disabled);
#   - one wineserver for the prefix, started by wine_boot and kept for 60 s
#     after its last client (-p60): the server Wine starts by itself has
#     persistence 0 and exits the moment a process ends, and a process
#     starting in that moment can lose its server ("wine client error:0:
#     recvmsg: Connection reset by peer", seen once in ~180 back-to-back
#     runs here);
#   - wine_stop ends the prefix's wineserver and with it every Windows
#     process the suite left in this prefix (tinytest leaves a timed-out
#     child behind), and nothing outside it.
# Needs WIN_DIR set to the Windows build directory.

WINE64=/usr/lib/wine/wine64
WINESERVER=/usr/lib/wine/wineserver64
WINEPREFIX=$(cd "$WIN_DIR" && pwd)/wine
WINEDEBUG=-all
WINEDLLOVERRIDES="mscoree,mshtml="
export WINEPREFIX WINEDEBUG WINEDLLOVERRIDES
unset DISPLAY WAYLAND_DISPLAY

# wine_boot: make the prefix once; print why and fail if Wine cannot run.
wine_boot() {
    if [ ! -x "$WINE64" ]; then
        echo "$WINE64 missing (Debian package wine64)"
        return 1
    fi
    "$WINESERVER" -k 2>/dev/null
    "$WINESERVER" -w 2>/dev/null
    mkdir -p "$WINEPREFIX"
    # not on our stdout: callers read it through a pipe ($(wine_boot)),
    # which the server would hold open for as long as it runs
    if ! "$WINESERVER" -p60 < /dev/null > "$WIN_DIR/wineserver.log" 2>&1
    then
        echo "wineserver -p60 failed: $(tail -1 "$WIN_DIR/wineserver.log")"
        return 1
    fi
    if [ ! -f "$WINEPREFIX/.rp-booted" ]; then
        timeout 300 "$WINE64" wineboot -i < /dev/null \
            > "$WIN_DIR/wineboot.log" 2>&1
        rc=$?
        if [ $rc -ne 0 ]; then
            echo "wineboot -i failed (exit $rc): $(grep -v '^$' "$WIN_DIR/wineboot.log" | tail -1)"
            wine_stop
            return 1
        fi
        touch "$WINEPREFIX/.rp-booted"
    fi
    # Output to a file, never a pipe: the first process of a server starts
    # Wine's own services, which inherit its stdout and keep a pipe open
    # for as long as the server lives.
    timeout 120 "$WINE64" cmd.exe /c echo rp-wine-ok < /dev/null \
        > "$WIN_DIR/wine-check.log" 2>&1
    if grep -q rp-wine-ok "$WIN_DIR/wine-check.log"; then
        return 0
    fi
    echo "wine64 cmd.exe /c echo failed: $(grep -v '^$' "$WIN_DIR/wine-check.log" | tail -1)"
    wine_stop
    return 1
}

# wine_run SECONDS PROGRAM ARGS...: run a Windows program, bounded.  Give
# its output to a file (see wine_boot).
wine_run() {
    wine_secs=$1; shift
    timeout "$wine_secs" "$WINE64" "$@"
}

# wine_path DIR: the Windows form of a Unix path (drive Z: is /).
wine_path() {
    echo "Z:$(cd "$1" && pwd)" | tr / '\\'
}

wine_stop() {
    "$WINESERVER" -k 2>/dev/null
    return 0
}
