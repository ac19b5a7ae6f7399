# module/: the nginx event module, built as a dynamic module for Debian's
# nginx 1.22.1 against the nginx-dev tree (/usr/share/nginx/src): configured
# in a copy with Debian's own flags (conf_flags, --with-compat), `make
# modules`, with core linked in statically.
#
#   make module   build/module/ngx_event_io_uring_module.so
#   make demo     nginx on io_uring: a request, then wrk against epoll

MOD_SO       := $(BUILD)/module/ngx_event_io_uring_module.so
MOD_NGX      := $(BUILD)/module/nginx
MOD_NGX_DEV  := /usr/share/nginx/src
MOD_CFILES   := module/ngx_event_io_uring_module.c \
                module/ngx_event_io_uring_recv.c \
                module/ngx_event_io_uring_send.c \
                module/ngx_http_io_uring_module.c
MOD_SRCS     := $(MOD_CFILES) module/ngx_event_io_uring.h module/config
MOD_DEPS     := build-essential dpkg-dev nginx nginx-dev liburing-dev \
                libssl-dev libpcre2-dev zlib1g-dev

ALL_TARGETS  += module
DEPS_TARGETS += module-deps

.PHONY: module module-deps

module: $(MOD_SO)

module-deps:
	@scripts/deps.sh $(MOD_DEPS)

# configure checks the libraries of every module Debian enables, so the
# dev packages are needed even though only this module is compiled.
# $(call mod_configure,tree,core library,extra cc flags)
define mod_configure
	@scripts/deps.sh $(MOD_DEPS)
	rm -rf $(1) && mkdir -p $(1)
	cp -a $(MOD_NGX_DEV)/. $(1)/
	cd $(1) && RINGPLUG_CORE_LIB=$(abspath $(2)) \
	    bash -c '. ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC $(3)" \
	        --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC" \
	        --add-dynamic-module=$(TOP)/module' > configure.log 2>&1 \
	    || { tail -20 configure.log; exit 1; }
	touch $(1)/.configured
endef

# $(call mod_link,tree,.so): nginx's `make modules`, installed by rename
define mod_link
	rm -f $(1)/objs/ngx_event_io_uring_module.so
	$(MAKE) -C $(1) -f objs/Makefile modules >/dev/null
	cp $(1)/objs/ngx_event_io_uring_module.so $(2).tmp
	mv -f $(2).tmp $(2)
endef

$(MOD_NGX)/.configured: module/config module/module.mk
	$(call mod_configure,$(MOD_NGX),$(CORE_LIB),)

# nginx's Makefile does not relink when the core library changes: drop the
# old .so so it does.  Installed by rename: a running nginx keeps its mapping
# of the old file (overwriting a loaded .so in place crashes its workers).
# Our files are also checked with the project's warnings (nginx's own
# -Wno-unused-parameter: its callbacks take what they ignore).
$(MOD_SO): $(MOD_NGX)/.configured $(MOD_SRCS) $(CORE_LIB) core/ringplug.h
	for f in $(MOD_CFILES); do \
	    $(CC) -std=gnu11 $(WARN) -Wno-unused-parameter -fsyntax-only \
	        -I$(MOD_NGX)/src/core -I$(MOD_NGX)/src/event \
	        -I$(MOD_NGX)/src/event/modules -I$(MOD_NGX)/src/os/unix \
	        -I$(MOD_NGX)/src/http -I$(MOD_NGX)/src/http/modules \
	        -I$(MOD_NGX)/src/http/v2 \
	        -I$(MOD_NGX)/objs -Imodule -Icore $$f || exit 1; \
	done
	$(call mod_link,$(MOD_NGX),$@)

.PHONY: demo
demo:
	scripts/demo.sh

# A test build (suite nginx, t/faults.t): core and the module compiled with
# -DRP_FAULT_INJECTION, in a tree of its own; `env RP_FAIL_ALLOC=n;` then
# fails a worker's n-th allocation.  Never installed.
MOD_FAULT_DIR  := $(BUILD)/module-faults
MOD_FAULT_SO   := $(MOD_FAULT_DIR)/ngx_event_io_uring_module.so
MOD_FAULT_NGX  := $(MOD_FAULT_DIR)/nginx
MOD_FAULT_CORE := $(MOD_FAULT_DIR)/core/libringplug.a

.PHONY: module-faults
module-faults: $(MOD_FAULT_SO)

$(MOD_FAULT_DIR)/core/%.o: core/%.c $(CORE_HDRS) | $(CORE_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -DRP_FAULT_INJECTION -c -o $@ $<

$(MOD_FAULT_CORE): $(CORE_SRCS:core/%.c=$(MOD_FAULT_DIR)/core/%.o)
	$(AR) rcs $@ $^

$(MOD_FAULT_NGX)/.configured: module/config module/module.mk
	$(call mod_configure,$(MOD_FAULT_NGX),$(MOD_FAULT_CORE),-DRP_FAULT_INJECTION)

$(MOD_FAULT_SO): $(MOD_FAULT_NGX)/.configured $(MOD_SRCS) $(MOD_FAULT_CORE) \
                 core/ringplug.h
	$(call mod_link,$(MOD_FAULT_NGX),$@)
