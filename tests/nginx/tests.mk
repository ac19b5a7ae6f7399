# tests/nginx/: integration suite against Debian's real nginx 1.22.1, every
# case once per event mode in $(MODES) (default "epoll io_uring_readiness io_uring_completion"; the
# table of modes is %MODES in tests/nginx/lib/RPNginx.pm).  Perl Test::More
# under prove, as nginx's own tests; see tests/nginx/run.sh.
#
#   make test-nginx                  build the module, run every case
#   make test-nginx MODES=epoll      one mode only

NGINX_TEST_PKGS := nginx libnginx-mod-stream curl wrk nghttp2-client \
                   openssl perl coreutils strace gzip \
                   libnginx-mod-http-image-filter libio-socket-ssl-perl

TEST_SUITES  += nginx
DEPS_TARGETS += nginx-test-deps

.PHONY: test-nginx nginx-test-deps

nginx-test-deps:
	@scripts/deps.sh $(NGINX_TEST_PKGS)

# The module is built first when module/module.mk is there; if its build
# fails the suite still runs, and every case fails in the modes that need
# the missing .so while the others still report.
test-nginx: nginx-test-deps
ifneq ($(filter module,$(ALL_TARGETS)),)
	@$(MAKE) --no-print-directory module || \
	    echo "test-nginx: make module failed; io_uring modes will fail"
	@$(MAKE) --no-print-directory module-faults || \
	    echo "test-nginx: make module-faults failed; t/faults.t will skip"
endif
	@$(if $(MODES),MODES='$(MODES)') scripts/suite.sh nginx tests/nginx/run.sh
