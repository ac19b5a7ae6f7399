# tests/core/windows.mk: the core tests (tests/core/test-*.c) cross-built
# with mingw-w64 and run under Wine (tests/windows/wine.sh) by
# tests/core/run-windows.sh; harness-win.h gives them Winsock under the
# POSIX names they use.
#  windows-core
#      against $(CORE_WIN_LIB), the Windows engine as shipped: Wine has no
#      RIO, so every engine must run its overlapped data path (WSARecv into
#      the buffer pool, WSASend) with AFD polls, and say so with the reason
#      in rp_engine_describe() (the fallback a host logs once per engine:
#      the suite checks the line).
#  windows-core-rio-standin
#      the same programs against a test build of the engine
#      (-DRP_RIO_STANDIN): its RIO function table is the tests' rule-checking
#      RIO stand-in (tests/windows/rio-standin.c, built on overlapped I/O),
#      the tests make their sockets with the stand-in's calls and mark them
#      RP_FD_REGISTERED_IO, so the engine runs its RIO data path; a RIO rule
#      breach ends the case's process (exit 86) and fails the case with the
#      rule's name.
# A core program that cannot run on Windows is one SKIP line naming why
# (run-windows.sh); if Wine cannot start, a suite is one SKIP line.
# `make windows-core-mutants` (not part of `make test`) breaks one feature
# of core/win/rio.c at a time and checks that these suites catch it.

WIN_CORE_TESTS      := recv close fd-reuse send wait poll cq-overflow stats \
                       nomem
WIN_CORE_TEST_DIR   := $(BUILD)/windows/tests/core
WIN_CORE_SI_DIR     := $(BUILD)/windows/tests/core-rio-standin
# the engine on the RIO stand-in, as windows/windows.mk builds it
WIN_CORE_SI_LIB     := $(WIN_SA_CORE)
WIN_CORE_TEST_CFLAGS := -std=gnu11 -D__USE_MINGW_ANSI_STDIO=1 $(WARN) -O2 \
                        -g -Icore -Itests/core
WIN_CORE_TEST_LIBS  := -static -lws2_32 -lntdll -lpthread
WIN_CORE_TEST_HDRS  := tests/core/harness.h tests/core/harness-win.h \
                       core/ringplug.h
WIN_CORE_BINS       := $(WIN_CORE_TESTS:%=$(WIN_CORE_TEST_DIR)/test-%.exe)
WIN_CORE_SI_BINS    := $(WIN_CORE_TESTS:%=$(WIN_CORE_SI_DIR)/test-%.exe)
WIN_CORE_SI_HDRS    := tests/windows/rio-standin.h core/win/rio.h

TEST_SUITES  += windows-core windows-core-rio-standin
DEPS_TARGETS += windows-core-test-deps

.PHONY: windows-core-test-deps windows-core-tests test-windows-core \
        test-windows-core-rio-standin windows-core-mutants

windows-core-test-deps:
	@scripts/deps.sh wine64 python3

windows-core-tests: $(WIN_CORE_BINS) $(WIN_CORE_SI_BINS)

# test-nomem fails the engine's malloc() calls: every one goes through
# its __wrap_malloc()
WIN_CORE_TEST_LDFLAGS :=
$(WIN_CORE_TEST_DIR)/test-nomem.exe $(WIN_CORE_SI_DIR)/test-nomem.exe: \
    WIN_CORE_TEST_LDFLAGS := -Wl,--wrap=malloc

$(WIN_CORE_TEST_DIR)/test-%.exe: tests/core/test-%.c $(WIN_CORE_TEST_HDRS) \
                                 $(CORE_WIN_LIB) | $(CORE_WIN_DEPS)
	@mkdir -p $(@D)
	$(CORE_WIN_CC) $(WIN_CORE_TEST_CFLAGS) -o $@ $< $(CORE_WIN_LIB) \
	    $(WIN_CORE_TEST_LDFLAGS) $(WIN_CORE_TEST_LIBS)

$(WIN_CORE_SI_DIR)/test-%.exe: tests/core/test-%.c $(WIN_CORE_TEST_HDRS) \
                               $(WIN_CORE_SI_HDRS) $(WIN_CORE_SI_LIB) \
                               | $(CORE_WIN_DEPS)
	@mkdir -p $(@D)
	$(CORE_WIN_CC) $(WIN_CORE_TEST_CFLAGS) -DRP_RIO_STANDIN -Icore/win \
	    -Itests/windows -o $@ $< $(WIN_CORE_SI_LIB) \
	    $(WIN_CORE_TEST_LDFLAGS) $(WIN_CORE_TEST_LIBS)

test-windows-core: $(WIN_CORE_BINS) windows-core-test-deps
	@scripts/suite.sh windows-core tests/core/run-windows.sh windows-core \
	    overlapped $(WIN_DIR) $(WIN_CORE_TEST_DIR) $(WIN_CORE_TESTS)

test-windows-core-rio-standin: $(WIN_CORE_SI_BINS) windows-core-test-deps
	@scripts/suite.sh windows-core-rio-standin tests/core/run-windows.sh \
	    windows-core-rio-standin rio $(WIN_DIR) $(WIN_CORE_SI_DIR) \
	    $(WIN_CORE_TESTS)

windows-core-mutants: windows-core-test-deps | $(CORE_WIN_DEPS)
	@WIN_DIR=$(WIN_DIR) tests/core/mutants-windows.sh
