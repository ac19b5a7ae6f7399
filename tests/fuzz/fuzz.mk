# tests/fuzz/: libFuzzer target (Debian's clang) driving the engine on the
# real ring over socketpairs with a fuzzed script; see fuzz-engine.c.
# Not part of `make test`.
#
#   make fuzz                     FUZZ_SECONDS of fuzzing (default 120)
#   make fuzz FUZZ_SECONDS=600
# The corpus grows in build/fuzz/corpus; a finding is written to
# build/fuzz/crash-* and the target exits non-zero.

FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_BIN     := $(FUZZ_DIR)/fuzz-engine
FUZZ_SECONDS ?= 120
FUZZ_FLAGS   := -g -O1 -std=gnu11 -D_GNU_SOURCE -Icore \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

.PHONY: fuzz fuzz-build fuzz-deps

fuzz-deps:
	@scripts/deps.sh clang liburing-dev

$(FUZZ_BIN): tests/fuzz/fuzz-engine.c $(CORE_SRCS) $(CORE_HDRS) | fuzz-deps
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz-engine.c $(CORE_SRCS) -luring

fuzz-build: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	@mkdir -p $(FUZZ_DIR)/corpus
	@echo "fuzz: $(FUZZ_SECONDS) s of libFuzzer on the engine (corpus $(FUZZ_DIR)/corpus)"
	@cd $(FUZZ_DIR) && { ASAN_OPTIONS=detect_leaks=1 ./fuzz-engine \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
	    -print_final_stats=1 corpus > fuzz.log 2>&1; rc=$$?; \
	    grep -E '^#[0-9]+ +(INITED|DONE)|^stat::number_of_executed_units|^stat::peak_rss|ERROR|fuzz-engine:|SUMMARY|Done [0-9]+ runs' fuzz.log; \
	    echo "fuzz: exit $$rc ($$(ls crash-* 2>/dev/null | wc -l) findings), log $(FUZZ_DIR)/fuzz.log"; \
	    exit $$rc; }
