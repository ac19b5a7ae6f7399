# tests/libevent/: libevent with the io_uring backend.
#  libevent-regress-epoll, libevent-regress-io_uring
#      libevent's own regression suite (test.sh's programs, regress, and
#      regress with EVENT_DEBUG_MODE=1) once per backend, one result per case,
#      so the two counts sit side by side; io_uring with completion
#      bufferevents (the default).  `make test-libevent-regress-io_uring-nobev`
#      runs it with EVENT_IO_URING_NO_BEV=1 (readiness bufferevents); not part
#      of `make test`, which it would lengthen by one more run.
#  libevent-asan
#      regress once more on io_uring, libevent and core built with ASan+UBSan
#      (completion bufferevents included)
#  libevent-faults
#      allocation failure injection (le-faults.c) on the fault build
#      (make libevent-faults): a bufferevent and evhttp scenario on io_uring
#      with each allocation of core and the adapter failed in turn
#  libevent
#      our programs on the installed library: method, features and trigger
#      modes, avoid by env and by config, fork, threads, 10,000 fds, the seccomp
#      fallback, and an unmodified Debian memcached run as a drop-in;
#      regress.sh's verdict on a case failing on every backend (SKIP, never
#      PASS: classify.sh);
#      completion bufferevents (le-bev.c): kind, connect, setfd with a socket
#      still connecting (also on socket bufferevents), fork with a send in
#      flight (child frees what it inherited after or before event_reinit),
#      setfd/free/read from a thread that may not touch the ring, echo with an
#      ENOBUFS storm (8 buffers, 128 connections), slow reader, and free
#      with I/O in flight built with ASan

LEV_TEST_DIR  := $(BUILD)/tests/libevent
LEV_TEST_BINS := $(addprefix $(LEV_TEST_DIR)/,le-basic le-fork le-manyfds \
                 le-threads le-bev le-bev-asan le-initwarn)
LEV_TEST_LIBS := -L$(LEV_PREFIX)/lib -Wl,-rpath,$(abspath $(LEV_PREFIX))/lib \
                 -levent_core -levent_pthreads

TEST_SUITES  += libevent-regress-epoll libevent-regress-io_uring libevent \
                libevent-asan libevent-faults
DEPS_TARGETS += deps-libevent-tests

.PHONY: deps-libevent-tests test-libevent test-libevent-regress-epoll \
        test-libevent-regress-io_uring test-libevent-regress-io_uring-nobev \
        test-libevent-asan test-libevent-faults

deps-libevent-tests:
	@scripts/deps.sh memcached perl

$(LEV_TEST_DIR)/%: tests/libevent/%.c $(LEV_LIB)
	@mkdir -p $(@D)
	$(CC) $(RP_CFLAGS) -I$(LEV_PREFIX)/include -o $@ $< $(LEV_TEST_LIBS)

# the test program under ASan (libevent itself is not instrumented, but
# LeakSanitizer sees its allocations and ASan the program's)
$(LEV_TEST_DIR)/le-bev-asan: tests/libevent/le-bev.c $(LEV_LIB)
	@mkdir -p $(@D)
	$(CC) $(RP_CFLAGS) $(SAN_FLAGS) -I$(LEV_PREFIX)/include -o $@ $< \
	    $(LEV_TEST_LIBS)

test-libevent-regress-epoll test-libevent-regress-io_uring \
test-libevent-regress-io_uring-nobev: \
test-libevent-regress-%: $(LEV_LIB)
	@scripts/suite.sh libevent-regress-$* tests/libevent/regress.sh \
	    $(LEV_SRC) $*

test-libevent: $(LEV_TEST_BINS) $(if $(TOOLS_DIR),tools) deps-libevent-tests
	@scripts/suite.sh libevent tests/libevent/run.sh $(LEV_TEST_DIR) \
	    $(LEV_PREFIX) $(BUILD)/tools/rp-noring $(LEV_SRC)

test-libevent-asan: $(LEV_SAN_LIB)
	@scripts/suite.sh libevent-asan tests/libevent/regress.sh \
	    $(LEV_SAN_SRC) io_uring asan

# le-faults against the fault build's libevent (ASan+UBSan, exports
# rp_fault_set and rp_fault_count), that library alone: its libevent.so
# holds everything, and a second copy of core would be a second count.
LEV_FLT_TEST := $(LEV_TEST_DIR)/le-faults

$(LEV_FLT_TEST): tests/libevent/le-faults.c $(LEV_FLT_LIB)
	@mkdir -p $(@D)
	$(CC) $(RP_CFLAGS) $(SAN_FLAGS) -I$(LEV_FLT_SRC)/include -o $@ $< \
	    -L$(LEV_FLT_SRC)/.libs -Wl,-rpath,$(abspath $(LEV_FLT_SRC))/.libs \
	    -levent

test-libevent-faults: $(LEV_FLT_TEST)
	@ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
	 UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1} \
	 scripts/suite.sh libevent-faults tests/libevent/faults.sh $<
