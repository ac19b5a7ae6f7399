# loop-adapter/: Debian's libevent 2.1.12 with the io_uring backend.
#
# `make libevent` fetches the Debian source (apt-get source), unpacks a fresh
# tree whenever patches/ change, links loop-adapter/io_uring.c into it, and
# builds a drop-in libevent-2.1.so.7 (same soname and ABI, plus core and
# liburing) installed under $(LEV_PREFIX).  Run any libevent program with
# LD_LIBRARY_PATH=$(LEV_PREFIX)/lib to put it on io_uring.

LEV_VER     := 2.1.12-stable
LEV_DIR     := $(BUILD)/libevent
LEV_SRC     := $(LEV_DIR)/src/libevent-$(LEV_VER)
LEV_PREFIX  := $(LEV_DIR)/prefix
LEV_LIB     := $(LEV_PREFIX)/lib/libevent-2.1.so.7
LEV_PATCHES := $(sort $(wildcard patches/libevent-*.patch))
LEV_DEPS    := dpkg-dev autoconf automake libtool libssl-dev zlib1g-dev \
               pkg-config liburing-dev python3 patch

ALL_TARGETS  += libevent
DEPS_TARGETS += libevent-deps

.PHONY: libevent libevent-deps
libevent: $(LEV_LIB)

libevent-deps:
	@scripts/deps.sh $(LEV_DEPS)
	@scripts/debsrc.sh

# Only the Debian source package files (.dsc, orig and debian tarballs).
$(LEV_DIR)/dl/.fetched:
	@scripts/deps.sh $(LEV_DEPS)
	@scripts/debsrc.sh
	rm -rf $(@D) && mkdir -p $(@D)
	cd $(@D) && apt-get source --download-only libevent=2.1.12-stable-8+deb12u1 \
	    || apt-get source --download-only libevent
	touch $@

# A fresh tree every time the patches change: Debian's patches applied by
# dpkg-source, then ours, then autoreconf.  io_uring.c is a symlink, so
# editing the backend needs no new tree.  $(1): the tree's directory.
define lev_tree
	rm -rf $(dir $(1)) && mkdir -p $(dir $(1))
	dpkg-source -x $(firstword $(wildcard $(LEV_DIR)/dl/libevent_*.dsc)) \
	    $(1) > $(dir $(1))unpack.log 2>&1 || { cat $(dir $(1))unpack.log; exit 1; }
	for p in $(LEV_PATCHES); do patch -d $(1) -p1 < $$p || exit 1; done
	ln -sf $(TOP)/loop-adapter/io_uring.c $(1)/io_uring.c
	cd $(1) && autoreconf -fi >/dev/null 2>&1
endef

$(LEV_DIR)/.patched: $(LEV_DIR)/dl/.fetched $(LEV_PATCHES)
	$(call lev_tree,$(LEV_SRC))
	touch $@

# Debian's own hardening flags, so the result matches the packaged library.
$(LEV_DIR)/.configured: $(LEV_DIR)/.patched loop-adapter/libevent.mk
	cd $(LEV_SRC) && \
	    export DEB_BUILD_MAINT_OPTIONS=hardening=+all && \
	    ./configure -q --prefix=$(abspath $(LEV_PREFIX)) --disable-static \
	        CFLAGS="$$(dpkg-buildflags --get CFLAGS)" \
	        LDFLAGS="$$(dpkg-buildflags --get LDFLAGS)" \
	        CPPFLAGS="$$(dpkg-buildflags --get CPPFLAGS) -I$(TOP)/core" \
	        RINGPLUG_LIBS="-Wl,--exclude-libs,$(notdir $(CORE_LIB)) $(abspath $(CORE_LIB)) $(CORE_LIBS)"
	touch $@

# libevent compiles its own files with its own warnings; our file must also
# pass the project's -Wall -Wextra -Werror, checked here against the tree.
$(LEV_LIB): $(LEV_DIR)/.configured loop-adapter/io_uring.c core/ringplug.h \
            $(CORE_LIB)
	$(MAKE) -C $(LEV_SRC) -s include/event2/event-config.h
	$(CC) -std=gnu11 $(WARN) -fsyntax-only -I$(LEV_SRC) -I$(LEV_SRC)/include \
	    -I$(LEV_SRC)/compat -Icore -DHAVE_CONFIG_H loop-adapter/io_uring.c
	rm -f $(LEV_SRC)/libevent.la $(LEV_SRC)/libevent_core.la
	$(MAKE) -C $(LEV_SRC) -j2 > $(LEV_DIR)/build.log 2>&1 \
	    || { tail -40 $(LEV_DIR)/build.log; exit 1; }
	$(MAKE) -C $(LEV_SRC) install >> $(LEV_DIR)/build.log 2>&1 \
	    || { tail -40 $(LEV_DIR)/build.log; exit 1; }
	touch $@

# The same library built with ASan+UBSan against core's sanitizer build, for
# the libevent-asan suite (libevent's regress on io_uring); not installed.
LEV_SAN_SRC := $(LEV_DIR)/san/libevent-$(LEV_VER)
LEV_SAN_LIB := $(LEV_SAN_SRC)/.libs/libevent-2.1.so.7

$(LEV_DIR)/.san-patched: $(LEV_DIR)/dl/.fetched $(LEV_PATCHES)
	$(call lev_tree,$(LEV_SAN_SRC))
	touch $@

$(LEV_DIR)/.san-configured: $(LEV_DIR)/.san-patched loop-adapter/libevent.mk
	cd $(LEV_SAN_SRC) && \
	    ./configure -q --disable-static \
	        CFLAGS="-O1 -g $(SAN_FLAGS)" LDFLAGS="$(SAN_FLAGS)" \
	        CPPFLAGS="-I$(TOP)/core" \
	        RINGPLUG_LIBS="-Wl,--exclude-libs,$(notdir $(CORE_LIB_SAN)) $(abspath $(CORE_LIB_SAN)) $(CORE_LIBS)"
	touch $@

$(LEV_SAN_LIB): $(LEV_DIR)/.san-configured loop-adapter/io_uring.c \
                core/ringplug.h $(CORE_LIB_SAN)
	rm -f $(LEV_SAN_SRC)/libevent.la $(LEV_SAN_SRC)/libevent_core.la
	$(MAKE) -C $(LEV_SAN_SRC) -j2 > $(LEV_DIR)/build-san.log 2>&1 \
	    || { tail -40 $(LEV_DIR)/build-san.log; exit 1; }
	touch $@
