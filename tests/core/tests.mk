# tests/core/: one program per engine feature (liburing test/ style), each
# on real loopback TCP, each printing PASS/FAIL/SKIP lines (and appending
# them to $RP_RESULTS), each runnable alone: build/tests/core/test-recv.
#  core      the programs against build/core/libringplug.a
#  core-san  the same programs and engine built with ASan+UBSan
# tests/core/run.sh runs a suite: every program under a time limit, a crash
# or non-zero exit without a FAIL line becomes one.
# `make core-mutants` (not part of `make test`) breaks one engine feature at
# a time in a copy of core/ and checks that the test covering it fails.

CORE_TESTS := recv close fd-reuse send wait poll cq-overflow stats fork \
              probe probe-disabled nomem
CORE_TEST_DIR     := $(BUILD)/tests/core
CORE_TEST_SAN_DIR := $(BUILD)/tests/core-san
CORE_TEST_BINS     := $(CORE_TESTS:%=$(CORE_TEST_DIR)/test-%)
CORE_TEST_SAN_BINS := $(CORE_TESTS:%=$(CORE_TEST_SAN_DIR)/test-%)
CORE_TEST_CFLAGS   := $(RP_CFLAGS) -Icore -Itests/core
CORE_TEST_LIBS     := -luring -lpthread

ALL_TARGETS += core-tests
TEST_SUITES += core core-san

.PHONY: core-tests core-tests-san test-core test-core-san core-mutants

core-tests: $(CORE_TEST_BINS)
core-tests-san: $(CORE_TEST_SAN_BINS)

$(CORE_TEST_DIR)/test-%: tests/core/test-%.c tests/core/harness.h \
                         core/ringplug.h $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(CORE_TEST_CFLAGS) -o $@ $< $(CORE_LIB) $(CORE_TEST_LIBS)

$(CORE_TEST_SAN_DIR)/test-%: tests/core/test-%.c tests/core/harness.h \
                             core/ringplug.h $(CORE_LIB_SAN)
	@mkdir -p $(@D)
	$(CC) $(CORE_TEST_CFLAGS) $(SAN_FLAGS) -o $@ $< $(CORE_LIB_SAN) \
	    $(CORE_TEST_LIBS)

test-core: core-tests tools
	@scripts/suite.sh core tests/core/run.sh core $(CORE_TEST_DIR) \
	    $(CORE_TESTS)

test-core-san: core-tests-san tools
	@ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
	 UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1} \
	 scripts/suite.sh core-san tests/core/run.sh core-san \
	    $(CORE_TEST_SAN_DIR) $(CORE_TESTS)

core-mutants: $(CORE_LIB)
	@tests/core/mutants.py

# core-faults: the engine built with -DRP_FAULT_INJECTION and ASan+UBSan,
# every allocation a scenario reaches failed in turn (test-faults.c)
CORE_FAULT_DIR  := $(BUILD)/core-faults
CORE_FAULT_OBJS := $(CORE_SRCS:core/%.c=$(CORE_FAULT_DIR)/%.o)
TEST_SUITES     += core-faults

$(CORE_FAULT_DIR)/%.o: core/%.c $(CORE_HDRS) | $(CORE_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) $(SAN_FLAGS) -DRP_FAULT_INJECTION -c -o $@ $<

# test-restrict: the ring refuses requests that are not the engine's own
$(CORE_FAULT_DIR)/test-%: tests/core/test-%.c tests/core/harness.h \
                          $(CORE_FAULT_OBJS)
	$(CC) $(CORE_TEST_CFLAGS) $(SAN_FLAGS) -DRP_FAULT_INJECTION -o $@ $< \
	    $(CORE_FAULT_OBJS) $(CORE_TEST_LIBS)

.PHONY: test-core-faults
test-core-faults: $(CORE_FAULT_DIR)/test-faults $(CORE_FAULT_DIR)/test-restrict \
                  tools
	@ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
	 UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1} \
	 scripts/suite.sh core-faults tests/core/run.sh core-faults \
	    $(CORE_FAULT_DIR) faults restrict
