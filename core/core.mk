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
