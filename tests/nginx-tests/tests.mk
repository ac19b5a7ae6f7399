# tests/nginx-tests/: nginx's own test suite (nginx-tests, found at
# NGINX_TESTS=dir or ../shared/nginx-tests) against Debian's nginx in each
# event mode; see tests/nginx-tests/run.pl.  Suite `nginx-tests` in
# make test: SKIP with the reason when no copy of the suite is found.
#
#   make nginx-tests                          all three modes
#   make nginx-tests MODES=io_uring_completion NGINX_TESTS_FILES='h2*.t'

NGINX_TESTS ?= $(abspath $(TOP)/../shared/nginx-tests)

# what the suite's tests look for: every dynamic module Debian's nginx was
# built with (Test::Nginx loads each one nginx -V names), the daemons and
# the Perl modules its optional cases require
NGINX_TESTS_PKGS := nginx libnginx-mod-http-geoip libnginx-mod-http-image-filter \
    libnginx-mod-http-perl libnginx-mod-http-xslt-filter libnginx-mod-mail \
    libnginx-mod-stream libnginx-mod-stream-geoip \
    perl openssl memcached uwsgi uwsgi-plugin-python3 ffmpeg \
    softhsm2 opensc libengine-pkcs11-openssl \
    libfcgi-perl libscgi-perl libcache-memcached-perl \
    libcache-memcached-fast-perl libprotocol-websocket-perl \
    libio-socket-ssl-perl libnet-ssleay-perl libgd-perl libcryptx-perl

TEST_SUITES  += nginx-tests

.PHONY: nginx-tests test-nginx-tests nginx-tests-deps

nginx-tests-deps:
	@if [ -d "$(NGINX_TESTS)" ]; then \
	    scripts/deps.sh $(NGINX_TESTS_PKGS); fi

nginx-tests test-nginx-tests: nginx-tests-deps
	@$(MAKE) --no-print-directory module
	@scripts/suite.sh nginx-tests tests/nginx-tests/run.sh "$(NGINX_TESTS)" \
	    $(MODES)
