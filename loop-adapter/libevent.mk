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
LEV_OURS    := io_uring.c io_uring-internal.h bufferevent_io_uring.c
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
# dpkg-source, then ours, then autoreconf.  Our files ($(LEV_OURS)) are
# symlinks, so editing them needs no new tree.  $(1): the tree's directory.
define lev_tree
	rm -rf $(dir $(1)) && mkdir -p $(dir $(1))
	dpkg-source -x $(firstword $(wildcard $(LEV_DIR)/dl/libevent_*.dsc)) \
	    $(1) > $(dir $(1))unpack.log 2>&1 || { cat $(dir $(1))unpack.log; exit 1; }
	for p in $(LEV_PATCHES); do patch -d $(1) -p1 < $$p || exit 1; done
	for f in $(LEV_OURS); do ln -sf $(TOP)/loop-adapter/$$f $(1)/$$f; done
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
$(LEV_LIB): $(LEV_DIR)/.configured $(addprefix loop-adapter/,$(LEV_OURS)) \
            core/ringplug.h $(CORE_LIB)
	$(MAKE) -C $(LEV_SRC) -s include/event2/event-config.h
	$(CC) -std=gnu11 $(WARN) -fsyntax-only -I$(LEV_SRC) -I$(LEV_SRC)/include \
	    -I$(LEV_SRC)/compat -Icore -DHAVE_CONFIG_H loop-adapter/io_uring.c \
	    loop-adapter/bufferevent_io_uring.c
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

$(LEV_SAN_LIB): $(LEV_DIR)/.san-configured \
                $(addprefix loop-adapter/,$(LEV_OURS)) core/ringplug.h \
                $(CORE_LIB_SAN)
	rm -f $(LEV_SAN_SRC)/libevent.la $(LEV_SAN_SRC)/libevent_core.la
	$(MAKE) -C $(LEV_SAN_SRC) -j2 > $(LEV_DIR)/build-san.log 2>&1 \
	    || { tail -40 $(LEV_DIR)/build-san.log; exit 1; }
	touch $@

# A test build (suite libevent-faults, tests/libevent/le-faults.c): libevent,
# the backend, completion bufferevents and core compiled with
# -DRP_FAULT_INJECTION and ASan+UBSan, in a tree of their own; not
# installed.  Every allocation of core and of our files asks core's
# rp_fault_alloc() first (io_uring-internal.h), one count for both.  No
# --exclude-libs here: this library exports core's API with the fault hooks
# rp_fault_set and rp_fault_count, so that the test sets the count at the
# start of each run and reads it at the end, in-process, as core-faults does
# (an env var read at init would need the count back through a log line).
LEV_FLT_DIR  := $(BUILD)/libevent-faults
LEV_FLT_SRC  := $(LEV_FLT_DIR)/src/libevent-$(LEV_VER)
LEV_FLT_LIB  := $(LEV_FLT_SRC)/.libs/libevent-2.1.so.7
LEV_FLT_CORE := $(LEV_FLT_DIR)/core/libringplug.a

.PHONY: libevent-faults
libevent-faults: $(LEV_FLT_LIB)

$(LEV_FLT_DIR)/core/%.o: core/%.c $(CORE_HDRS) | $(CORE_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) $(SAN_FLAGS) -DRP_FAULT_INJECTION -c -o $@ $<

$(LEV_FLT_CORE): $(CORE_SRCS:core/%.c=$(LEV_FLT_DIR)/core/%.o)
	$(AR) rcs $@ $^

$(LEV_FLT_DIR)/.patched: $(LEV_DIR)/dl/.fetched $(LEV_PATCHES)
	$(call lev_tree,$(LEV_FLT_SRC))
	touch $@

$(LEV_FLT_DIR)/.configured: $(LEV_FLT_DIR)/.patched loop-adapter/libevent.mk
	cd $(LEV_FLT_SRC) && \
	    ./configure -q --disable-static \
	        CFLAGS="-O1 -g $(SAN_FLAGS)" LDFLAGS="$(SAN_FLAGS)" \
	        CPPFLAGS="-I$(TOP)/core -DRP_FAULT_INJECTION" \
	        RINGPLUG_LIBS="$(abspath $(LEV_FLT_CORE)) $(CORE_LIBS)"
	touch $@

$(LEV_FLT_LIB): $(LEV_FLT_DIR)/.configured \
                $(addprefix loop-adapter/,$(LEV_OURS)) core/ringplug.h \
                $(LEV_FLT_CORE)
	$(MAKE) -C $(LEV_FLT_SRC) -s include/event2/event-config.h
	$(CC) -std=gnu11 $(WARN) -fsyntax-only -I$(LEV_FLT_SRC) \
	    -I$(LEV_FLT_SRC)/include -I$(LEV_FLT_SRC)/compat -Icore \
	    -DHAVE_CONFIG_H -DRP_FAULT_INJECTION loop-adapter/io_uring.c \
	    loop-adapter/bufferevent_io_uring.c
	rm -f $(LEV_FLT_SRC)/libevent.la $(LEV_FLT_SRC)/libevent_core.la
	$(MAKE) -C $(LEV_FLT_SRC) -j2 libevent.la \
	    > $(LEV_FLT_DIR)/build.log 2>&1 \
	    || { tail -40 $(LEV_FLT_DIR)/build.log; exit 1; }
	touch $@
