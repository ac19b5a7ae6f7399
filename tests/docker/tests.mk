# tests/docker/: the container demos (docker/) built and run by podman.
#
#   make test-docker    suite docker (tests/docker/run.sh): builds the images
#                       (cold: ~10 min; podman's layer cache makes a rerun of
#                       unchanged sources take seconds) and runs them under
#                       the default and our seccomp profiles
#   make demo-docker    the demos as a user runs them, commented (docker/demo.sh)
#   make docker-clean   remove the demo images, their build cache (label
#                       ringplug.demo) and the cached base image
TEST_SUITES += docker

DOCKER_DEPS := podman runc debootstrap podman-compose \
               golang-github-containernetworking-plugin-dnsname \
               curl perl python3
DEPS_TARGETS += docker-deps

.PHONY: test-docker demo-docker docker-deps docker-clean
docker-deps:
	@scripts/deps.sh $(DOCKER_DEPS)

test-docker: docker-deps
	@scripts/suite.sh docker tests/docker/run.sh

demo-docker: docker-deps
	docker/demo.sh

docker-clean:
	-scripts/podman.sh rmi -f ringplug-nginx ringplug-memcached \
	    ringplug-nginx-side-by-side ringplug-load 2>/dev/null
	-scripts/podman.sh image prune -a -f --filter label=ringplug.demo
	-scripts/podman.sh rmi -f localhost/ringplug-base:bookworm 2>/dev/null
	rm -f $(BUILD)/docker/base.tar
