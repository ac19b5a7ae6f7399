# core/: the ring engine, built static and position-independent (the nginx
# module .so and libevent's shared objects both link it), plus an
# ASan+UBSan variant for the sanitizer test run.

CORE_SRCS   := core/engine.c core/fd.c core/bufs.c core/uring.c core/os-posix.c
CORE_HDRS   := core/ringplug.h core/engine.h
CORE_LIB    := $(BUILD)/core/libringplug.a
CORE_LIB_SAN := $(BUILD)/core-san/libringplug.a
CORE_CFLAGS := $(RP_CFLAGS) -fPIC -fvisibility=hidden -Icore
CORE_LIBS   := -luring

ALL_TARGETS += $(CORE_LIB)

# Debian packages the engine needs; checked once per build tree.
CORE_DEPS := $(BUILD)/.deps-core
$(CORE_DEPS):
	@scripts/deps.sh build-essential pkg-config liburing-dev
	@mkdir -p $(@D) && touch $@

$(BUILD)/core/%.o: core/%.c $(CORE_HDRS) | $(CORE_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -c -o $@ $<

$(BUILD)/core-san/%.o: core/%.c $(CORE_HDRS) | $(CORE_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(CORE_LIB): $(CORE_SRCS:core/%.c=$(BUILD)/core/%.o)
	$(AR) rcs $@ $^

$(CORE_LIB_SAN): $(CORE_SRCS:core/%.c=$(BUILD)/core-san/%.o)
	$(AR) rcs $@ $^

.PHONY: core
core: $(CORE_LIB)

# The Windows engine (core/win/: rio.c, os-win.c), cross-built with Debian's
# mingw-w64 into $(BUILD)/windows/core; a test build of it takes its RIO
# function table from the tests' RIO stand-in (-DRP_RIO_STANDIN,
# tests/windows/rio-standin.h).
CORE_WIN_CC    := x86_64-w64-mingw32-gcc
CORE_WIN_SRCS  := core/engine.c core/fd.c core/bufs.c core/win/rio.c \
                  core/win/os-win.c
CORE_WIN_HDRS  := $(CORE_HDRS) core/win/rio.h
CORE_WIN_CFLAGS := -std=gnu11 $(WARN) -O2 -g -Icore -Icore/win
CORE_WIN_LIB   := $(BUILD)/windows/core/libringplug.a
CORE_WIN_DEPS  := $(BUILD)/.deps-core-windows

$(CORE_WIN_DEPS):
	@scripts/deps.sh gcc-mingw-w64-x86-64-win32 binutils-mingw-w64-x86-64
	@mkdir -p $(@D) && touch $@

$(BUILD)/windows/core/%.o: core/%.c $(CORE_WIN_HDRS) | $(CORE_WIN_DEPS)
	@mkdir -p $(@D)
	$(CORE_WIN_CC) $(CORE_WIN_CFLAGS) -c -o $@ $<

$(BUILD)/windows/core/%.o: core/win/%.c $(CORE_WIN_HDRS) | $(CORE_WIN_DEPS)
	@mkdir -p $(@D)
	$(CORE_WIN_CC) $(CORE_WIN_CFLAGS) -c -o $@ $<

$(CORE_WIN_LIB): $(patsubst %.c,$(BUILD)/windows/core/%.o,$(notdir $(CORE_WIN_SRCS)))
	x86_64-w64-mingw32-ar rcs $@ $^

.PHONY: core-windows
core-windows: $(CORE_WIN_LIB)
