# packaging/: Debian packages, built with Debian's tools, and the suites
# that install them; a second nginx (Debian 13's 1.26.3) and liburing
# (Debian 13's 2.9) built from source as further targets for the module
# and core.
#
#   make deb            build/packaging/debs/bookworm/: the module package
#                       (libnginx-mod-event-io-uring, for Debian 12's nginx)
#                       and Debian's libevent rebuilt with the backend
#                       (libevent-*_2.1.12-stable-8+deb12u1+ringplug1);
#                       debug symbols in dbgsym/, lintian's output printed
#   make test-packages  suite packages: the .debs installed with apt into a
#                       clean Debian 12 root (debootstrap, cached)
#   make deb-trixie     the module package for Debian 13's nginx 1.26.3,
#                       built in a Debian 13 root with its nginx-dev
#   see packaging/nginx126.mk for nginx 1.26 and liburing 2.9

PKG_DIR      := $(BUILD)/packaging
PKG_DEBS     := $(PKG_DIR)/debs/bookworm
PKG_DEPS     := build-essential dpkg-dev debhelper devscripts quilt fakeroot \
                lintian nginx nginx-dev liburing-dev libssl-dev debootstrap \
                curl iproute2 perl procps util-linux
PKG_MOD_IN   := $(wildcard core/*.c core/*.h) $(filter-out %.mk,$(wildcard module/*)) \
                $(shell find packaging/nginx-module -type f 2>/dev/null) \
                packaging/version.sh
PKG_LEV_IN   := $(wildcard core/*.c core/*.h loop-adapter/*.c loop-adapter/*.h) \
                $(wildcard patches/libevent-*.patch) \
                $(wildcard packaging/libevent/*)

TEST_SUITES  += packages
DEPS_TARGETS += packaging-deps

.PHONY: deb deb-module deb-libevent deb-trixie test-packages packaging-deps

packaging-deps:
	@scripts/deps.sh $(PKG_DEPS)

deb: $(PKG_DEBS)/.module $(PKG_DEBS)/.libevent
	@ls $(PKG_DEBS)/*.deb | sed 's|^|  |'
deb-module: $(PKG_DEBS)/.module
deb-libevent: $(PKG_DEBS)/.libevent

# $(call pkg_collect,build dir,glob of the package's files[,into])
define pkg_collect
	mkdir -p $(or $(3),$(PKG_DEBS))/dbgsym
	rm -f $(or $(3),$(PKG_DEBS))/$(2) $(or $(3),$(PKG_DEBS))/dbgsym/$(2)
	cp $(1)/$(2) $(or $(3),$(PKG_DEBS))/
	mv $(or $(3),$(PKG_DEBS))/*-dbgsym_*.deb $(or $(3),$(PKG_DEBS))/dbgsym/ 2>/dev/null || true
	sed 's/^/  lintian: /' $(1)/lintian.txt
endef

$(PKG_DEBS)/.module: $(PKG_MOD_IN)
	@scripts/deps.sh $(PKG_DEPS)
	packaging/nginx-module/build.sh $(PKG_DIR)/module-deb12 +deb12
	$(call pkg_collect,$(PKG_DIR)/module-deb12,libnginx-mod-event-io-uring*.deb)
	touch $@

$(PKG_DEBS)/.libevent: $(PKG_LEV_IN)
	@scripts/deps.sh $(PKG_DEPS)
	@scripts/debsrc.sh
	packaging/libevent/build.sh $(PKG_DIR)/libevent
	$(call pkg_collect,$(PKG_DIR)/libevent,libevent-*.deb)
	touch $@

# Debian 13: the module package built in a Debian 13 root
PKG_DEBS13   := $(PKG_DIR)/debs/trixie

deb-trixie: $(PKG_DEBS13)/.module
	@ls $(PKG_DEBS13)/*.deb | sed 's|^|  |'

$(PKG_DEBS13)/.module: $(PKG_MOD_IN) packaging/nginx-module/build-trixie.sh
	@scripts/deps.sh $(PKG_DEPS)
	packaging/nginx-module/build-trixie.sh $(PKG_DIR)/module-deb13
	$(call pkg_collect,$(PKG_DIR)/module-deb13,libnginx-mod-event-io-uring*.deb,$(PKG_DEBS13))
	touch $@

# suite packages-trixie: that package installed with apt into a clean
# Debian 13 root, served by Debian 13's nginx (not part of make test: the
# first run makes a Debian 13 build root, about 3 minutes)
.PHONY: test-packages-trixie
test-packages-trixie: packaging-deps tools
	@$(MAKE) --no-print-directory deb-trixie || \
	    echo "test-packages-trixie: make deb-trixie failed"
	@scripts/suite.sh packages-trixie tests/packages/run.sh $(PKG_DEBS13) trixie

test-packages: packaging-deps tools
	@$(MAKE) --no-print-directory deb || \
	    echo "test-packages: make deb failed; the suite reports what is missing"
	@scripts/suite.sh packages tests/packages/run.sh $(PKG_DEBS)

-include packaging/nginx126.mk
