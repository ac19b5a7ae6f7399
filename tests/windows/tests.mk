# tests/windows/: the Windows suite, run under Wine (Debian 12's wine64,
# 8.0) on the mingw-w64 cross build of windows/windows.mk.
#  windows
#      core/win/rio.h against mingw-w64's headers and as with the SDK's;
#      the RIO stand-in (tests only: rio-standin.c) used as an engine would
#      and every rule breach it must catch, with a mutant per rule and per
#      relied-on behaviour (mutants.py); readiness through \Device\Afd on an
#      IOCP (afd-poll-check.c); libevent's own regression suite with the
#      iocp/ group on its stock win32 backend and on ours, rio, compared
#      case by case (regress.sh); a bufferevent and evhttp smoke test on
#      both and on the DLLs built against the RIO stand-in (rio-smoke.c).
#      Wine runs headless in a prefix under build/windows/wine, made once.
#  `make test-windows-regress-debug` runs regress once more with
#  EVENT_DEBUG_MODE=1, as libevent's test.sh does; not part of `make test`.

WIN_TEST_DIR  := $(WIN_DIR)/tests
WIN_TEST_EXES := $(addprefix $(WIN_TEST_DIR)/,rio-standin-test.exe \
                 afd-poll-check.exe wine-acceptex.exe rio-smoke.exe)
WIN_TEST_DEPS := wine64 python3

TEST_SUITES  += windows
DEPS_TARGETS += windows-test-deps

.PHONY: windows-test-deps windows-tests test-windows \
        test-windows-regress-debug

windows-test-deps:
	@scripts/deps.sh $(WIN_TEST_DEPS)

windows-tests: $(WIN_TEST_EXES)

$(WIN_TEST_DIR)/rio-standin-test.exe: tests/windows/rio-standin-test.c \
        tests/windows/rio-standin.c tests/windows/rio-standin.h core/win/rio.h
	@scripts/deps.sh $(WIN_DEPS)
	@mkdir -p $(@D)
	$(WIN_CC) $(WIN_CFLAGS) -Icore/win -Itests/windows -o $@ \
	    tests/windows/rio-standin-test.c tests/windows/rio-standin.c -lws2_32

$(WIN_TEST_DIR)/afd-poll-check.exe: tests/windows/afd-poll-check.c
	@scripts/deps.sh $(WIN_DEPS)
	@mkdir -p $(@D)
	$(WIN_CC) $(WIN_CFLAGS) -o $@ $< -lws2_32 -lntdll

$(WIN_TEST_DIR)/wine-acceptex.exe: tests/windows/wine-acceptex.c
	@scripts/deps.sh $(WIN_DEPS)
	@mkdir -p $(@D)
	$(WIN_CC) $(WIN_CFLAGS) -o $@ $< -lws2_32

# Against the import libraries of make windows; run on those DLLs and on
# the stand-in's (same names, same ABI).
$(WIN_TEST_DIR)/rio-smoke.exe: tests/windows/rio-smoke.c $(WIN_LEV_DLLS) \
        tests/windows/rio-standin.h
	@mkdir -p $(@D)
	$(WIN_CC) $(WIN_CFLAGS) -I$(WIN_PREFIX)/include -Itests/windows \
	    -Icore/win -o $@ $< -L$(WIN_PREFIX)/lib -levent_extra -levent_core \
	    -lws2_32

test-windows: $(WIN_LEV_DLLS) $(WIN_SA_DLLS) $(WIN_TEST_EXES) \
              windows-test-deps
	@scripts/suite.sh windows tests/windows/run.sh $(WIN_DIR) \
	    $(WIN_LEV_SRC) $(WIN_PREFIX) $(WIN_CC) "$(WIN_CFLAGS)" \
	    $(WIN_SA_LEV_SRC)/.libs

test-windows-regress-debug: $(WIN_LEV_DLLS) windows-test-deps
	@scripts/suite.sh windows-regress-debug sh -c \
	    'tests/windows/regress.sh $(WIN_DIR) $(WIN_LEV_SRC) $(WIN_PREFIX) win32 debug; \
	     tests/windows/regress.sh $(WIN_DIR) $(WIN_LEV_SRC) $(WIN_PREFIX) rio debug'
