# ringplug: top-level build.  `make help` lists the targets.
#
# Each part brings its own fragment (core/core.mk, module/module.mk, ...):
# a fragment adds build targets and appends the names of its test suites to
# TEST_SUITES, each run by a `test-<name>` target through scripts/suite.sh.
# `make test` runs every suite, whatever earlier ones did, and ends with one
# total line.

BUILD      ?= build
CC         ?= cc
WARN       := -Wall -Wextra -Werror
CFLAGS     ?= -O2 -g
RP_CFLAGS  := -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS)
SAN_FLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=undefined
TOP        := $(CURDIR)

TEST_SUITES :=

.PHONY: all help deps test demo bench bench-quick clean
.DEFAULT_GOAL := all

include core/core.mk
-include tests/tools/tools.mk
-include tests/core/tests.mk
-include module/module.mk
-include tests/nginx/tests.mk
-include tests/nginx-tests/tests.mk
-include loop-adapter/libevent.mk
-include tests/libevent/tests.mk
-include bench/bench.mk
-include tests/docker/tests.mk
-include tests/fuzz/fuzz.mk
-include tests/soak/soak.mk
-include packaging/packaging.mk
-include windows/windows.mk
-include tests/windows/tests.mk
-include tests/core/windows.mk

all: $(ALL_TARGETS)

help:
	@echo "ringplug make targets:"
	@echo "  make deps         install the Debian packages the build needs"
	@echo "  make              build everything (core, tools, module, libevent)"
	@echo "  make test         install what is missing, build, run every suite"
	@echo "                    (suites: $(TEST_SUITES))"
	@echo "  make test-NAME    run one suite"
	@echo "  make demo         nginx on io_uring: one request, then wrk vs epoll"
	@echo "  make demo-docker  the container demos with podman (nginx, memcached,"
	@echo "                    side by side)"
	@echo "  make nginx-tests  nginx's own test suite, epoll vs both io_uring modes"
	@echo "  make libevent     Debian's libevent 2.1.12 with the io_uring backend"
	@echo "  make deb          Debian 12 packages: the module and libevent"
	@echo "  make deb-trixie   the Debian 13 module package (nginx 1.26)"
	@echo "  make test-nginx126, make nginx126-tests"
	@echo "                    tests/nginx and nginx's suite against nginx 1.26"
	@echo "  make windows      Debian's libevent and the engine cross-built for"
	@echo "                    Windows with mingw-w64 (build/windows/)"
	@echo "  make test-windows the Windows suite under Wine (part of make test)"
	@echo "  make bench        full benchmark, epoll vs io_uring (minutes)"
	@echo "  make bench-quick  a short benchmark smoke run (part of make test)"
	@echo "  make bench-filesend  sendfile vs pread+send vs io_uring SPLICE"
	@echo "  make clean        remove $(BUILD)/"

deps: $(DEPS_TARGETS)
	@scripts/deps.sh build-essential pkg-config liburing-dev libseccomp-dev

test: deps
	@rm -rf $(BUILD)/results; mkdir -p $(BUILD)/results
	@for s in $(TEST_SUITES); do \
	    $(MAKE) --no-print-directory test-$$s || \
	        echo "FAIL $$s (make test-$$s failed)" \
	            >> $(BUILD)/results/$$s.make.res; \
	done; \
	scripts/summary.sh

compile_commands.json:
	@command -v bear >/dev/null || scripts/deps.sh bear
	bear -- $(MAKE) -B all

clean:
	rm -rf $(BUILD)
