# windows/windows.mk: the Windows cross build (Debian's mingw-w64).
#
# `make windows` builds Debian's libevent 2.1.12 source with our patches
# (patches/) and the ringplug backend (loop-adapter/, named "rio" on
# Windows) on the Windows engine (core/win/, `make core-windows`), for
# 64-bit Windows with x86_64-w64-mingw32, the way libevent's own autotools
# build names its DLLs under mingw, so they drop in for libevent's:
# libevent-2-1-7.dll, libevent_core-2-1-7.dll, libevent_extra-2-1-7.dll
# (OpenSSL off: Debian has no mingw OpenSSL), installed under
# $(WIN_PREFIX) (bin/ DLLs, lib/ import libraries, include/).  The engine
# is linked into libevent-2-1-7.dll and libevent_core-2-1-7.dll, as on
# Linux.  The build tree keeps libevent's regression programs
# (test/.libs/*.exe), which tests/windows/ runs under Wine on libevent's
# stock win32 backend (EVENT_NORIO=1) and on rio.
#
# No stock build: the same DLLs with EVENT_NORIO=1 run libevent's win32
# backend, whose code the patches do not touch, and a base on it never
# gets our bufferevents (bufferevent_io_uring_new_ asks for the rio
# backend).
#
# `make windows-standin` builds the same source again under
# $(WIN_SA_DIR) against an engine that takes RIO from the tests' RIO
# stand-in (tests/windows/rio-standin.c, -DRP_RIO_STANDIN): for tests only,
# never to ship.
#
# The source is the same download as loop-adapter/libevent.mk's
# ($(LEV_DIR)/dl), unpacked by its lev_tree recipe.

WIN_HOST     := x86_64-w64-mingw32
WIN_CC       := $(WIN_HOST)-gcc
WIN_CFLAGS   := -std=gnu11 $(WARN) -O2 -g
WIN_DIR      := $(BUILD)/windows
WIN_LEV_SRC  := $(WIN_DIR)/libevent/libevent-$(LEV_VER)
WIN_PREFIX   := $(WIN_DIR)/prefix
WIN_DLL_NAMES := libevent-2-1-7.dll libevent_core-2-1-7.dll \
                 libevent_extra-2-1-7.dll
WIN_LEV_DLLS := $(addprefix $(WIN_PREFIX)/bin/,$(WIN_DLL_NAMES))
WIN_DEPS     := gcc-mingw-w64-x86-64-win32 binutils-mingw-w64-x86-64 \
                dpkg-dev autoconf automake libtool patch
WIN_OURS     := $(LEV_OURS) io_uring-win32.c
WIN_OURS_SRC := $(addprefix loop-adapter/,$(WIN_OURS))

# libtool drops a static archive from a DLL's link under mingw (it only
# takes import libraries there), so the engine goes to the linker as -Wl,
# with the system libraries it needs after it (libtool moves -l options
# ahead of -Wl ones).
win_ringplug_libs = -Wl,--whole-archive,$(abspath $(1)),--no-whole-archive,-lws2_32,-lntdll

DEPS_TARGETS += windows-deps

.PHONY: windows windows-deps windows-standin
windows: $(WIN_LEV_DLLS)

windows-deps:
	@scripts/deps.sh $(WIN_DEPS)

$(WIN_DIR)/.unpacked: LEV_OURS := $(WIN_OURS)
$(WIN_DIR)/.unpacked: $(LEV_DIR)/dl/.fetched $(LEV_PATCHES) \
                      windows/windows.mk
	@scripts/deps.sh $(WIN_DEPS)
	$(call lev_tree,$(WIN_LEV_SRC))
	touch $@

# $(1): tree, $(2): prefix, $(3): engine archive, $(4): log, $(5): more
# CPPFLAGS
define win_configure
	cd $(1) && \
	    ./configure -q --host=$(WIN_HOST) \
	        --prefix=$(abspath $(2)) --disable-static \
	        --disable-openssl --disable-samples CFLAGS="-O2 -g" \
	        CPPFLAGS="-I$(TOP)/core $(5)" \
	        RINGPLUG_LIBS="$(call win_ringplug_libs,$(3))" \
	        > $(abspath $(4)) 2>&1 || { tail -20 $(abspath $(4)); exit 1; }
endef

# Our files must also pass the project's -Wall -Wextra -Werror, checked
# against the tree as loop-adapter/libevent.mk does on Linux.  libevent's
# .la files go so that the DLLs are linked again with a new engine.
# $(1): tree, $(2): log, $(3): more CPPFLAGS
define win_build
	$(MAKE) -C $(1) -s include/event2/event-config.h
	$(WIN_CC) $(WIN_CFLAGS) -fsyntax-only -I$(1) -I$(1)/include \
	    -I$(1)/compat -I$(1)/WIN32-Code -Icore $(3) -DHAVE_CONFIG_H \
	    $(WIN_OURS_SRC:%.h=)
	rm -f $(1)/libevent.la $(1)/libevent_core.la
	nice $(MAKE) -C $(1) -j2 > $(2) 2>&1 \
	    || { tail -40 $(2); exit 1; }
endef

$(WIN_DIR)/.configured: $(WIN_DIR)/.unpacked $(CORE_WIN_LIB)
	$(call win_configure,$(WIN_LEV_SRC),$(WIN_PREFIX),$(CORE_WIN_LIB),$(WIN_DIR)/configure.log)
	touch $@

$(WIN_LEV_DLLS) &: $(WIN_DIR)/.configured $(WIN_OURS_SRC) core/ringplug.h \
                   $(CORE_WIN_LIB)
	$(call win_build,$(WIN_LEV_SRC),$(WIN_DIR)/build.log)
	$(MAKE) -C $(WIN_LEV_SRC) install >> $(WIN_DIR)/build.log 2>&1 \
	    || { tail -40 $(WIN_DIR)/build.log; exit 1; }
	touch $(WIN_LEV_DLLS)

# ---- the engine on the RIO stand-in, and libevent on it (tests only)
WIN_SA_DIR     := $(WIN_DIR)/standin
WIN_SA_LEV_SRC := $(WIN_SA_DIR)/libevent/libevent-$(LEV_VER)
WIN_SA_CORE    := $(WIN_SA_DIR)/core/libringplug.a
WIN_SA_CORE_OBJS := $(patsubst %.c,$(WIN_SA_DIR)/core/%.o,$(notdir \
                    $(CORE_WIN_SRCS))) $(WIN_SA_DIR)/core/rio-standin.o
WIN_SA_DLLS    := $(addprefix $(WIN_SA_LEV_SRC)/.libs/,$(WIN_DLL_NAMES))
WIN_SA_CFLAGS  := $(CORE_WIN_CFLAGS) -DRP_RIO_STANDIN -Itests/windows
WIN_SA_CPPFLAGS := -DRP_RIO_STANDIN -I$(TOP)/core/win -I$(TOP)/tests/windows

windows-standin: $(WIN_SA_DLLS)

$(WIN_SA_DIR)/core/%.o: core/%.c $(CORE_WIN_HDRS) | $(CORE_WIN_DEPS)
	@mkdir -p $(@D)
	$(CORE_WIN_CC) $(WIN_SA_CFLAGS) -c -o $@ $<

$(WIN_SA_DIR)/core/%.o: core/win/%.c $(CORE_WIN_HDRS) \
                        tests/windows/rio-standin.h | $(CORE_WIN_DEPS)
	@mkdir -p $(@D)
	$(CORE_WIN_CC) $(WIN_SA_CFLAGS) -c -o $@ $<

$(WIN_SA_DIR)/core/rio-standin.o: tests/windows/rio-standin.c \
        tests/windows/rio-standin.h core/win/rio.h | $(CORE_WIN_DEPS)
	@mkdir -p $(@D)
	$(CORE_WIN_CC) $(WIN_SA_CFLAGS) -c -o $@ $<

$(WIN_SA_CORE): $(WIN_SA_CORE_OBJS)
	x86_64-w64-mingw32-ar rcs $@ $^

$(WIN_SA_DIR)/.unpacked: LEV_OURS := $(WIN_OURS)
$(WIN_SA_DIR)/.unpacked: $(LEV_DIR)/dl/.fetched $(LEV_PATCHES) \
                         windows/windows.mk
	@scripts/deps.sh $(WIN_DEPS)
	$(call lev_tree,$(WIN_SA_LEV_SRC))
	touch $@

$(WIN_SA_DIR)/.configured: $(WIN_SA_DIR)/.unpacked $(WIN_SA_CORE)
	$(call win_configure,$(WIN_SA_LEV_SRC),$(WIN_SA_DIR)/prefix,$(WIN_SA_CORE),$(WIN_SA_DIR)/configure.log,$(WIN_SA_CPPFLAGS))
	touch $@

$(WIN_SA_DLLS) &: $(WIN_SA_DIR)/.configured $(WIN_OURS_SRC) core/ringplug.h \
                  $(WIN_SA_CORE)
	$(call win_build,$(WIN_SA_LEV_SRC),$(WIN_SA_DIR)/build.log,$(WIN_SA_CPPFLAGS))
	touch $(WIN_SA_DLLS)
