#!/bin/sh
# Rebuild Debian's libevent source package with ringplug's io_uring backend
# under a local version, with Debian's tools: apt-get source, our changes
# as quilt patches in debian/patches (series), a dch entry, then
# dpkg-buildpackage -b.  Debian's debian/rules runs `make check` in the
# build (dh_auto_test): test/test.sh once per backend, io_uring included
# (test-runner-io_uring.patch); a failure fails the build.
#
#   packaging/libevent/build.sh OUTDIR
#
# The binary packages and sonames are Debian's (libevent-2.1-7,
# libevent-core-2.1-7, ... with libevent-2.1.so.7 etc.); `apt install
# ./libevent-*.deb` puts every libevent program on io_uring,
# EVENT_NOIO_URING=1 opts one out, installing Debian's version goes back.
set -e
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$1
[ -n "$out" ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
base=${RP_LIBEVENT_DEBIAN:-2.1.12-stable-8+deb12u1}
ver=$base+ringplug1
maint=${RP_DEB_MAINTAINER:-$(git -C "$top" log -1 --format='%an <%ae>' 2>/dev/null || echo 'ringplug <ringplug@example.org>')}

# Debian's source package, fetched once
if [ ! -f "$out/dl/.fetched" ]; then
    rm -rf "$out/dl" && mkdir -p "$out/dl"
    (cd "$out/dl" && apt-get source -q --download-only "libevent=$base" >/dev/null)
    touch "$out/dl/.fetched"
fi

# a fresh tree: Debian's patches applied by dpkg-source
rm -rf "$out/src" "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
mkdir -p "$out/src"
dpkg-source -x "$out/dl/libevent_$base.dsc" "$out/src/libevent" > "$out/src/unpack.log" 2>&1 \
    || { cat "$out/src/unpack.log"; exit 1; }
tree=$out/src/libevent

# A quilt patch from a description, existing patches (-p1, a/ b/) and new
# files: $1 name, $2 description, then "patch:FILE" or "new:PATH=SOURCE".
mkpatch() {
    name=$1 desc=$2; shift 2
    p=$tree/debian/patches/$name
    {
        echo "Description: $desc"
        echo "Author: ringplug"
        echo "Forwarded: not-needed"
        echo "---"
        for item in "$@"; do
            case $item in
            patch:*) cat "$top/${item#patch:}" ;;
            new:*)
                path=${item#new:}; path=${path%%=*}; src=$top/${item#*=}
                n=$(wc -l < "$src")
                echo "--- /dev/null"
                echo "+++ b/$path"
                echo "@@ -0,0 +1,$n @@"
                sed 's/^/+/' "$src"
                ;;
            esac
        done
    } > "$p"
    echo "$name" >> "$tree/debian/patches/series"
}

cd "$tree"
new_files() {   # new:ringplug/x.c=core/x.c for every file of a directory
    for f in "$top/$2"/$3; do
        echo "new:$1/$(basename "$f")=$2/$(basename "$f")"
    done
}
mkpatch ringplug-io_uring-backend.patch \
    "ringplug's io_uring backend (loop-adapter/io_uring.c), ahead of epoll" \
    patch:patches/libevent-io_uring-backend.patch \
    new:io_uring.c=loop-adapter/io_uring.c \
    new:io_uring-internal.h=loop-adapter/io_uring-internal.h
mkpatch ringplug-io_uring-bufferevent.patch \
    "completion bufferevents on an io_uring base (loop-adapter/bufferevent_io_uring.c)" \
    patch:patches/libevent-io_uring-bufferevent.patch \
    new:bufferevent_io_uring.c=loop-adapter/bufferevent_io_uring.c
# shellcheck disable=SC2046
mkpatch ringplug-engine.patch \
    "the ringplug engine (core/), built by debian/rules into a static library" \
    $(new_files ringplug core '*.c') $(new_files ringplug core '*.h')
cp "$top/packaging/libevent/test-runner-io_uring.patch" debian/patches/
echo test-runner-io_uring.patch >> debian/patches/series
QUILT_PATCHES=debian/patches quilt push -a -q --fuzz=0 > "$out/src/quilt.log" 2>&1 \
    || { cat "$out/src/quilt.log"; exit 1; }

# debian/control: the engine needs liburing
grep -q '^Build-Depends: debhelper-compat (= 13),$' debian/control \
    || { echo "libevent: debian/control's Build-Depends changed; update build.sh" >&2; exit 1; }
sed -i 's/^Build-Depends: debhelper-compat (= 13),$/Build-Depends: debhelper-compat (= 13),\n               liburing-dev (>= 2.3),/' debian/control

# debian/rules: build the engine first, hand it to configure
grep -q '^		--disable-libevent-regress$' debian/rules \
    || { echo "libevent: debian/rules changed; update build.sh" >&2; exit 1; }
python3 - debian/rules <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("override_dh_auto_configure:\n",
"""# ringplug: the engine (ringplug/, core/ of ringplug) as a static PIC
# library with the project's warnings, linked into libevent_core with its
# symbols kept private (--exclude-libs), plus -luring.
include /usr/share/dpkg/buildflags.mk
RP_DIR := $(CURDIR)/debian/build-ringplug
RP_LIB := $(RP_DIR)/libringplug.a
$(RP_DIR)/%.o: ringplug/%.c $(wildcard ringplug/*.h)
	mkdir -p $(RP_DIR)
	$(CC) -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror $(CPPFLAGS) $(CFLAGS) \\
	    -fPIC -fvisibility=hidden -Iringplug -c -o $@ $<
$(RP_LIB): $(patsubst ringplug/%.c,$(RP_DIR)/%.o,$(wildcard ringplug/*.c))
	$(AR) rcs $@ $^

override_dh_auto_configure: $(RP_LIB)
""")
# symbols that only this build has (the backend's and the completion
# bufferevents' library-internal ones, exported as libevent exports its
# own) are recorded with the version "<ours>~": lintian rejects the
# current version with its revision, and a rebuild of ours satisfies "~"
s += """
# ringplug: new symbols get our version with a "~" (see build.sh)
include /usr/share/dpkg/pkg-info.mk
override_dh_makeshlibs:
	dh_makeshlibs -- -v$(DEB_VERSION)~
"""
s = s.replace("\t\t--disable-libevent-regress\n",
"""\t\t--disable-libevent-regress \\
\t\tCPPFLAGS="$(CPPFLAGS) -I$(CURDIR)/ringplug" \\
\t\tRINGPLUG_LIBS="-Wl,--exclude-libs,libringplug.a $(RP_LIB) -luring"
""")
open(p, "w").write(s)
PY
echo "debian/build-ringplug/" >> debian/clean

DEBFULLNAME=${maint% <*} DEBEMAIL=$(echo "$maint" | sed 's/.*<\(.*\)>.*/\1/') \
    dch -v "$ver" -D bookworm -u medium --force-distribution \
    "Local build with ringplug's io_uring backend ($(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)):" \
    2>/dev/null
for l in "d/p/ringplug-io_uring-backend.patch: the backend, ahead of epoll; EVENT_NOIO_URING=1 opts out." \
         "d/p/ringplug-io_uring-bufferevent.patch: completion bufferevents." \
         "d/p/ringplug-engine.patch, d/rules: the engine, static, private." \
         "d/p/test-runner-io_uring.patch: make check runs test.sh on io_uring." \
         "d/control: Build-Depends liburing-dev."; do
    DEBFULLNAME=${maint% <*} DEBEMAIL=$(echo "$maint" | sed 's/.*<\(.*\)>.*/\1/') \
        dch -a "$l" 2>/dev/null
done

start=$(date +%s)
if ! nice -n 10 dpkg-buildpackage -b -us -uc -j2 > "$out/build.log" 2>&1; then
    tail -40 "$out/build.log"
    echo "libevent package: dpkg-buildpackage failed (see $out/build.log)" >&2
    exit 1
fi
echo "libevent package: built $ver in $(($(date +%s) - start)) s"
mv "$out/src"/*.deb "$out/src"/*.changes "$out/src"/*.buildinfo "$out/"
cd "$out"
grep -E '^(PASS|FAIL|SKIP|ERROR|# (TOTAL|PASS|FAIL)):?' "$out/build.log" | sed 's/^/    /' | tail -14
# test.sh prints "Skipping test" for a backend it could not start, and
# the runner passes all the same: count what really ran on io_uring
uring=$(grep -c 'OKAY' src/libevent/test/io_uring.out 2>/dev/null || true)
echo "libevent package: make check on io_uring: ${uring:-0} test programs OKAY ($(grep -c FAILED src/libevent/test/io_uring.out 2>/dev/null || true) FAILED, $(grep -c Skipping src/libevent/test/io_uring.out 2>/dev/null || true) skipped)"
lintian --allow-root libevent_${ver}_*.changes > lintian.txt 2>&1 || true
echo "libevent package: lintian: $(grep -c '^[EWI]:' lintian.txt || true) tags (lintian.txt)"
