# bench/: the benchmark harness (bench/bench.py, bench/README.md) and the
# small programs it runs: the floor and ceiling responders, the libevent
# servers (built only once build/libevent/prefix exists) and the ping-pong
# client.  `make bench` is the full run (minutes, not part of make test);
# suite bench-quick is its smoke run.

BENCH_OUT       := $(BUILD)/bench
BENCH_BINDIR    := $(BENCH_OUT)/bin
BENCH_PY        := /usr/bin/python3
BENCH_LE_PREFIX ?= $(BUILD)/libevent/prefix
BENCH_LE_LIB    := $(wildcard $(BENCH_LE_PREFIX)/lib/libevent.so)
BENCH_TOOLS     := $(BENCH_BINDIR)/floor_epoll $(BENCH_BINDIR)/ceiling_uring \
                   $(BENCH_BINDIR)/pingpong $(BENCH_BINDIR)/filesend
BENCH_LE_TOOLS  := $(BENCH_BINDIR)/le_http $(BENCH_BINDIR)/le_echo

ALL_TARGETS  += $(BENCH_TOOLS)
DEPS_TARGETS += bench-deps
TEST_SUITES  += bench-quick

.PHONY: bench-deps bench-bin bench-force test-bench-quick bench-filesend

bench-deps:
	@scripts/deps.sh python3 build-essential liburing-dev nginx wrk strace \
	    nghttp2-client openssl \
	    linux-perf gnuplot-nox

bench-bin: $(BENCH_TOOLS) $(if $(BENCH_LE_LIB),$(BENCH_LE_TOOLS))

$(BENCH_BINDIR)/floor_epoll $(BENCH_BINDIR)/pingpong: \
		$(BENCH_BINDIR)/%: bench/%.c bench/responder.h
	@mkdir -p $(@D)
	$(CC) $(RP_CFLAGS) -o $@ $<

$(BENCH_BINDIR)/ceiling_uring: bench/ceiling_uring.c bench/responder.h
	@mkdir -p $(@D)
	$(CC) $(RP_CFLAGS) -o $@ $< -luring

$(BENCH_BINDIR)/filesend: bench/filesend.c
	@mkdir -p $(@D)
	$(CC) $(RP_CFLAGS) -o $@ $< -luring -lpthread

# sendfile vs pread+send vs io_uring SPLICE for one cached file (the choice
# the module makes for file buffers), 3 runs per size and method.
bench-filesend: bench-deps $(BENCH_BINDIR)/filesend
	@mkdir -p $(BENCH_OUT)/files
	@for kb in 4 16 64 256; do \
	    f=$(BENCH_OUT)/files/$$kb.bin; \
	    [ -f $$f ] || head -c $$((kb * 1024)) /dev/urandom > $$f; \
	    for r in 1 2 3; do for m in sendfile pread splice; do \
	        $(BENCH_BINDIR)/filesend $$m $$f $$((640000 / kb)) || exit 1; \
	    done; done; \
	done

# Relink when the libevent under test moves (BENCH_LIBEVENT_PREFIX).
$(BENCH_BINDIR)/le-prefix: bench-force
	@mkdir -p $(@D)
	@echo '$(abspath $(BENCH_LE_PREFIX))' | cmp -s - $@ \
	    || echo '$(abspath $(BENCH_LE_PREFIX))' > $@

$(BENCH_LE_TOOLS): $(BENCH_BINDIR)/%: bench/%.c $(BENCH_LE_LIB) \
		$(BENCH_BINDIR)/le-prefix
	@mkdir -p $(@D)
	$(CC) $(RP_CFLAGS) -I$(BENCH_LE_PREFIX)/include -o $@ $< \
	    -L$(BENCH_LE_PREFIX)/lib -Wl,-rpath,$(abspath $(BENCH_LE_PREFIX)/lib) \
	    -levent

bench: bench-deps
	@BENCH_BUILD_DIR=$(BUILD) $(BENCH_PY) bench/bench.py

bench-quick: bench-deps
	@BENCH_BUILD_DIR=$(BUILD) $(BENCH_PY) bench/bench.py --quick

test-bench-quick:
	@BENCH_BUILD_DIR=$(BUILD) scripts/suite.sh bench-quick \
	    $(BENCH_PY) bench/bench.py --quick
