# windows/windows.mk: the Windows cross build (Debian's mingw-w64).
#
# `make windows` builds Debian's libevent 2.1.12 source, stock (Debian's
# patches only, none of ours), for 64-bit Windows with x86_64-w64-mingw32,
# the way libevent's own autotools build names its DLLs under mingw:
# libevent-2-1-7.dll, libevent_core-2-1-7.dll, libevent_extra-2-1-7.dll
# (OpenSSL off: Debian has no mingw OpenSSL), installed under
# $(WIN_PREFIX) (bin/ DLLs, lib/ import libraries, include/).  The build
# tree keeps libevent's regression programs (test/.libs/*.exe), which
# tests/windows/ runs under Wine.
#
# The source is the same download as loop-adapter/libevent.mk's
# ($(LEV_DIR)/dl), unpacked by its lev_tree recipe with no patches of ours
# and no files of ours linked in.

WIN_HOST     := x86_64-w64-mingw32
WIN_CC       := $(WIN_HOST)-gcc
WIN_CFLAGS   := -std=gnu11 $(WARN) -O2 -g
WIN_DIR      := $(BUILD)/windows
WIN_LEV_SRC  := $(WIN_DIR)/libevent/libevent-$(LEV_VER)
WIN_PREFIX   := $(WIN_DIR)/prefix
WIN_LEV_DLLS := $(addprefix $(WIN_PREFIX)/bin/,libevent-2-1-7.dll \
                libevent_core-2-1-7.dll libevent_extra-2-1-7.dll)
WIN_DEPS     := gcc-mingw-w64-x86-64-win32 dpkg-dev autoconf automake \
                libtool

DEPS_TARGETS += windows-deps

.PHONY: windows windows-deps
windows: $(WIN_LEV_DLLS)

windows-deps:
	@scripts/deps.sh $(WIN_DEPS)

# Stock: lev_tree with no patches and no files of ours.
$(WIN_DIR)/.unpacked: LEV_PATCHES :=
$(WIN_DIR)/.unpacked: LEV_OURS :=
$(WIN_DIR)/.unpacked: $(LEV_DIR)/dl/.fetched windows/windows.mk
	@scripts/deps.sh $(WIN_DEPS)
	$(call lev_tree,$(WIN_LEV_SRC))
	touch $@

$(WIN_DIR)/.configured: $(WIN_DIR)/.unpacked
	cd $(WIN_LEV_SRC) && \
	    ./configure -q --host=$(WIN_HOST) \
	        --prefix=$(abspath $(WIN_PREFIX)) --disable-static \
	        --disable-openssl --disable-samples CFLAGS="-O2 -g" \
	        > ../configure.log 2>&1 || { tail -20 ../configure.log; exit 1; }
	touch $@

$(WIN_LEV_DLLS) &: $(WIN_DIR)/.configured
	nice $(MAKE) -C $(WIN_LEV_SRC) -j2 > $(WIN_DIR)/build.log 2>&1 \
	    || { tail -40 $(WIN_DIR)/build.log; exit 1; }
	$(MAKE) -C $(WIN_LEV_SRC) install >> $(WIN_DIR)/build.log 2>&1 \
	    || { tail -40 $(WIN_DIR)/build.log; exit 1; }
	touch $(WIN_LEV_DLLS)
