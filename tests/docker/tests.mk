# tests/docker/: the demo image's build steps (docker/build.sh) run directly,
# then its nginx answers a request on io_uring.
TEST_SUITES += docker

.PHONY: test-docker
test-docker: module
	@scripts/deps.sh nginx curl python3
	@scripts/suite.sh docker tests/docker/run.sh
