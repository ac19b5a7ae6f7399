# tests/soak/: make soak (about 10 minutes, not part of make test): mixed
# traffic against nginx in each mode while the master is reloaded, the
# binary upgraded and a worker killed, then evhttp on our libevent under
# connection churn; see tests/soak/soak.t.
#
#   make soak                          SOAK_PHASE=40 s a phase, 3 modes
#   make soak SOAK_PHASE=120 MODES=io_uring_completion

SOAK_PHASE ?= 40

.PHONY: soak

soak: nginx-test-deps
	@$(MAKE) --no-print-directory module libevent
	@$(MAKE) --no-print-directory bench-bin
	@mkdir -p $(BUILD)/soak
	@echo "soak: $(SOAK_PHASE) s a phase (reloads, binary upgrade, worker kill) per mode, then libevent"
	@RP_NGINX_BUILD=$(abspath $(BUILD))/soak RP_RESULTS=$(BUILD)/soak/results \
	    SOAK_PHASE=$(SOAK_PHASE) $(if $(MODES),MODES='$(MODES)') \
	    prove -v tests/soak/soak.t 2>&1 | tee $(BUILD)/soak/soak.log | \
	    grep -E '^ *# (epoll|io_uring|libevent)|not ok|^Result|Failed test'; \
	    grep -q '^Result: PASS' $(BUILD)/soak/soak.log
