# A second nginx and a second liburing, from Debian 13's sources (fetched
# by packaging/trixie-src.sh, which leaves the host's apt alone):
#
#   make nginx126          build/nginx126/: Debian 13's nginx 1.26.3 built
#                          here with Debian 13's configure flags (modules
#                          path and perl modules path under build/), and a
#                          Debian 13 nginx-dev tree (dev/, as its
#                          debian/rules makes it)
#   make module126         the module built against that tree the way
#                          module.mk builds it against Debian 12's
#   make test-nginx126     suite nginx126: tests/nginx against the 1.26
#                          binary, every mode (not part of make test)
#   make nginx126-tests    nginx's own suite (the 1.22 revision) against it,
#                          every mode (slow: not part of make test)
#   make core-liburing29   core/ compiled against liburing 2.9's headers
#                          and static library (build/liburing29/)
#   make test-core-liburing29  suite core-liburing29: tests/core's programs
#                          linked with both

N126_VER     := 1.26.3-3+deb13u9
N126_DIR     := $(BUILD)/nginx126
N126_SRC     := $(N126_DIR)/src/nginx
N126_BIN     := $(N126_DIR)/sbin/nginx
N126_MODS    := $(N126_DIR)/modules
N126_DEV     := $(N126_DIR)/dev
N126_MOD_NGX := $(N126_DIR)/module/nginx
N126_MOD_SO  := $(N126_DIR)/module/ngx_event_io_uring_module.so
# what Debian 13's nginx links or builds with, as its Build-Depends
N126_DEPS    := build-essential dpkg-dev devscripts libexpat1-dev libgd-dev \
                libgeoip-dev libpcre2-dev libperl-dev libssl-dev \
                libxslt1-dev zlib1g-dev liburing-dev

.PHONY: nginx126 module126 test-nginx126 nginx126-tests nginx126-deps

nginx126-deps:
	@scripts/deps.sh $(N126_DEPS)

$(N126_DIR)/dl/.fetched:
	@scripts/deps.sh $(N126_DEPS)
	rm -rf $(@D) && mkdir -p $(@D)
	packaging/trixie-src.sh $(@D) nginx=$(N126_VER)
	touch $@

# Debian's patches applied by dpkg-source; the flags are read from Debian
# 13's own debian/rules (bin_configure_flags: the nginx package;
# basic_configure_flags: what its nginx-dev records in conf_flags)
$(N126_DIR)/.unpacked: $(N126_DIR)/dl/.fetched
	rm -rf $(N126_DIR)/src && mkdir -p $(N126_DIR)/src
	dpkg-source -x $(N126_DIR)/dl/nginx_$(N126_VER).dsc $(N126_SRC) \
	    > $(N126_DIR)/src/unpack.log 2>&1 || { cat $(N126_DIR)/src/unpack.log; exit 1; }
	cd $(N126_SRC) && for v in bin_configure_flags basic_configure_flags; do \
	    $(MAKE) -s -f debian/rules --eval='rp-print: ; @echo $$(filter --%,$$(filter-out --with-cc-opt=% --with-ld-opt=%,$$('$$v')))' \
	        rp-print > ../$$v || exit 1; done
	touch $@

# Debian 13's flags, but modules and the perl module under build/: a
# relative load_module must not reach Debian 12's /usr/lib/nginx/modules
$(N126_DIR)/.configured: $(N126_DIR)/.unpacked
	cd $(N126_SRC) && ./configure $$(cat ../bin_configure_flags) \
	    --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC $$(dpkg-buildflags --get CPPFLAGS)" \
	    --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC" \
	    --modules-path=$(abspath $(N126_MODS)) \
	    --with-perl_modules_path=$(abspath $(N126_DIR)/perl) \
	    > $(abspath $(N126_DIR))/configure.log 2>&1 || { tail -20 $(N126_DIR)/configure.log; exit 1; }
	touch $@

$(N126_BIN): $(N126_DIR)/.configured
	nice -n 10 $(MAKE) -C $(N126_SRC) -f objs/Makefile -j2 > $(N126_DIR)/build.log 2>&1 \
	    || { tail -30 $(N126_DIR)/build.log; exit 1; }
	mkdir -p $(N126_DIR)/sbin $(N126_MODS) $(N126_DIR)/perl/auto/nginx
	cp $(N126_SRC)/objs/*.so $(N126_MODS)/
	cp $(N126_SRC)/objs/src/http/modules/perl/blib/lib/nginx.pm $(N126_DIR)/perl/
	cp $(N126_SRC)/objs/src/http/modules/perl/blib/arch/auto/nginx/nginx.so \
	    $(N126_DIR)/perl/auto/nginx/
	cp $(N126_SRC)/objs/nginx $@.tmp && mv -f $@.tmp $@

# Debian 13's nginx-dev tree, made as its debian/rules (build.src) makes it
$(N126_DEV)/.made: $(N126_DIR)/.unpacked
	rm -rf $(N126_DEV) && mkdir -p $(N126_DEV)
	cp -Pa $(N126_SRC)/auto $(N126_SRC)/configure $(N126_DEV)/
	sed -i '/^# create Makefile/,/^END$$/d' $(N126_DEV)/auto/make \
	    $(N126_DEV)/auto/init $(N126_DEV)/auto/install
	cd $(N126_SRC) && find src -type f -name '*.h' | tar -cf - -T - | tar -C $(abspath $(N126_DEV)) -xf -
	echo "NGX_CONF_FLAGS=( $$(cat $(N126_DIR)/src/basic_configure_flags) )" > $(N126_DEV)/conf_flags
	touch $@

nginx126: $(N126_BIN) $(N126_DEV)/.made

# the module, configured and linked by module.mk's own recipes against the
# Debian 13 tree
$(N126_MOD_NGX)/.configured: MOD_NGX_DEV := $(N126_DEV)
$(N126_MOD_NGX)/.configured: $(N126_DEV)/.made module/config module/module.mk
	$(call mod_configure,$(N126_MOD_NGX),$(CORE_LIB),)

# the project's warnings on our files against 1.26's headers, as module.mk
# checks them against 1.22's
$(N126_MOD_SO): $(N126_MOD_NGX)/.configured $(MOD_SRCS) $(CORE_LIB) core/ringplug.h
	$(CC) -std=gnu11 $(WARN) -Wno-unused-parameter -fsyntax-only \
	    $(addprefix -I$(N126_MOD_NGX)/,src/core src/event src/event/modules \
	        src/event/quic src/os/unix src/http src/http/modules src/http/v2 \
	        src/http/v3 objs) \
	    -Icore $(filter %.c,$(MOD_SRCS))
	$(call mod_link,$(N126_MOD_NGX),$@)

module126: $(N126_MOD_SO)

# module.mk's fault-injection build (core and module with
# -DRP_FAULT_INJECTION) against the Debian 13 tree, for t/faults.t
N126_FAULT_NGX := $(N126_DIR)/module-faults/nginx
N126_FAULT_SO  := $(N126_DIR)/module-faults/ngx_event_io_uring_module.so

$(N126_FAULT_NGX)/.configured: MOD_NGX_DEV := $(N126_DEV)
$(N126_FAULT_NGX)/.configured: $(N126_DEV)/.made module/config module/module.mk
	$(call mod_configure,$(N126_FAULT_NGX),$(MOD_FAULT_CORE),-DRP_FAULT_INJECTION)

$(N126_FAULT_SO): $(N126_FAULT_NGX)/.configured $(MOD_SRCS) $(MOD_FAULT_CORE) core/ringplug.h
	$(call mod_link,$(N126_FAULT_NGX),$@)

.PHONY: module126-faults
module126-faults: $(N126_FAULT_SO)

# Not in make test (about 5 minutes, plus 3 to build nginx the first
# time): its own target, as make nginx-tests is.
# tests/nginx against the 1.26 binary and its module, in a directory of
# its own (the suite's lock and results are per directory)
N126_ENV := RP_NGINX_BIN=$(abspath $(N126_BIN)) \
            RP_NGINX_MODULE=$(abspath $(N126_MOD_SO)) \
            RP_NGINX_MODULES_DIR=$(abspath $(N126_MODS)) \
            RP_NGINX_FAULT_MODULE=$(abspath $(N126_FAULT_SO)) \
            RP_NGINX_BUILD=$(abspath $(BUILD)/tests-nginx126)

test-nginx126: nginx-test-deps nginx126-deps
	@$(MAKE) --no-print-directory nginx126 module126 || \
	    echo "test-nginx126: building nginx 1.26 or its module failed; cases will fail"
	@$(MAKE) --no-print-directory module126-faults || \
	    echo "test-nginx126: make module126-faults failed; t/faults.t will skip"
	@$(N126_ENV) $(if $(MODES),MODES='$(MODES)') \
	    scripts/suite.sh nginx126 tests/nginx/run.sh

nginx126-tests: nginx-tests-deps nginx126-deps
	@$(MAKE) --no-print-directory nginx126 module126
	@$(N126_ENV) RP_NGINX_TESTS_OUT=$(abspath $(BUILD)/nginx-tests126) \
	    scripts/suite.sh nginx126-tests tests/nginx-tests/run.sh "$(NGINX_TESTS)" \
	    $(MODES)

# ---------------------------------------------------------------- liburing 2.9
U29_DIR    := $(BUILD)/liburing29
U29_PREFIX := $(U29_DIR)/prefix
U29_LIB    := $(U29_PREFIX)/lib/liburing.a
C29_DIR    := $(BUILD)/core-liburing29
C29_LIB    := $(C29_DIR)/libringplug.a
C29_TESTS  := $(C29_DIR)/tests

.PHONY: liburing29 core-liburing29 test-core-liburing29

$(U29_DIR)/dl/.fetched:
	@scripts/deps.sh build-essential dpkg-dev devscripts
	rm -rf $(@D) && mkdir -p $(@D)
	packaging/trixie-src.sh $(@D) liburing
	touch $@

# the library alone (src/), static and shared, installed under build/
$(U29_LIB): $(U29_DIR)/dl/.fetched
	rm -rf $(U29_DIR)/src && mkdir -p $(U29_DIR)/src
	dpkg-source -x $$(ls $(U29_DIR)/dl/liburing_2.9*.dsc) $(U29_DIR)/src/liburing \
	    > $(U29_DIR)/src/unpack.log 2>&1 || { cat $(U29_DIR)/src/unpack.log; exit 1; }
	cd $(U29_DIR)/src/liburing && ./configure --prefix=$(abspath $(U29_PREFIX)) \
	    --libdir=$(abspath $(U29_PREFIX))/lib > ../configure.log 2>&1 \
	    || { cat ../configure.log; exit 1; }
	$(MAKE) -C $(U29_DIR)/src/liburing/src -j2 > $(U29_DIR)/build.log 2>&1 \
	    || { tail -20 $(U29_DIR)/build.log; exit 1; }
	$(MAKE) -C $(U29_DIR)/src/liburing/src install >> $(U29_DIR)/build.log 2>&1 \
	    || { tail -20 $(U29_DIR)/build.log; exit 1; }

liburing29: $(U29_LIB)

# core with the project's flags against 2.9's headers
$(C29_DIR)/%.o: core/%.c $(CORE_HDRS) $(U29_LIB)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -I$(U29_PREFIX)/include -c -o $@ $<

$(C29_LIB): $(CORE_SRCS:core/%.c=$(C29_DIR)/%.o)
	$(AR) rcs $@ $^

core-liburing29: $(C29_LIB)

# tests/core's programs linked with that core and 2.9's static library
$(C29_TESTS)/test-%: tests/core/test-%.c tests/core/harness.h core/ringplug.h $(C29_LIB)
	@mkdir -p $(@D)
	$(CC) $(CORE_TEST_CFLAGS) -I$(U29_PREFIX)/include -o $@ $< $(C29_LIB) \
	    $(U29_LIB) -lpthread

TEST_SUITES += core-liburing29

test-core-liburing29: $(CORE_TESTS:%=$(C29_TESTS)/test-%) tools
	@scripts/suite.sh core-liburing29 tests/core/run.sh core-liburing29 \
	    $(C29_TESTS) $(CORE_TESTS)
