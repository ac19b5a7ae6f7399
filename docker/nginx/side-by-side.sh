#!/bin/sh
# Entry point of the side-by-side variant (docker/compose.yaml): the
# container's CPU counter on TCP port 9100 (one line, microseconds, read by
# the load container), then nginx in the foreground with $NGINX_CONF.
socat -T5 TCP-LISTEN:9100,reuseaddr,fork EXEC:/usr/local/bin/cgroup-cpu,nofork &
exec nginx -c "${NGINX_CONF:-/etc/nginx/nginx.conf}" -g 'daemon off;'
