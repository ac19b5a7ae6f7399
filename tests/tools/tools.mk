# tests/tools/: small programs the test suites share.
#  rp-noring    run a command with io_uring blocked by seccomp (EPERM, or
#               ENOSYS with --enosys), like Docker's default profile
#  uring-check  say whether io_uring_setup works here
# Suite `tools` checks the launcher itself.

TOOLS_DIR  := $(BUILD)/tools
TOOLS_BINS := $(TOOLS_DIR)/rp-noring $(TOOLS_DIR)/uring-check

ALL_TARGETS  += tools
DEPS_TARGETS += deps-tools
TEST_SUITES  += tools

.PHONY: tools deps-tools test-tools

tools: $(TOOLS_BINS)

# Debian packages the tools need; checked once per build tree.
TOOLS_DEPS := $(BUILD)/.deps-tools
$(TOOLS_DEPS):
	@scripts/deps.sh build-essential pkg-config libseccomp-dev
	@mkdir -p $(@D) && touch $@

deps-tools: $(TOOLS_DEPS)

$(TOOLS_DIR)/rp-noring: tests/tools/rp-noring.c | $(TOOLS_DEPS)
	@mkdir -p $(@D)
	$(CC) $(RP_CFLAGS) -o $@ $< $$(pkg-config --libs libseccomp 2>/dev/null || echo -lseccomp)

$(TOOLS_DIR)/uring-check: tests/tools/uring-check.c | $(TOOLS_DEPS)
	@mkdir -p $(@D)
	$(CC) $(RP_CFLAGS) -o $@ $<

test-tools: tools
	@scripts/suite.sh tools tests/tools/test-noring.sh $(BUILD)
