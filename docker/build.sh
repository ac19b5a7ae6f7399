#!/bin/sh
# Build steps of the demo image (docker/Dockerfile runs this; CI may run it
# directly on a Debian 12 host).  Installs Debian's nginx, builds the module,
# and writes a server config to $RP_DEST (default /srv/ringplug) listening on
# port ${RP_PORT:-8080}.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
dest=${RP_DEST:-/srv/ringplug}
port=${RP_PORT:-8080}

echo "docker/build.sh: building the nginx module in $src"
make -C "$src" module

echo "docker/build.sh: writing $dest/nginx.conf (port $port)"
mkdir -p "$dest/logs" "$dest/html" "$dest/modules"
cp "$src/build/module/ngx_event_io_uring_module.so" "$dest/modules/"
echo "ringplug demo: served by nginx on io_uring" > "$dest/html/index.html"
cat > "$dest/nginx.conf" <<CONF
load_module $dest/modules/ngx_event_io_uring_module.so;
worker_processes auto;
error_log stderr notice;
pid $dest/logs/nginx.pid;
events { use io_uring; }
http {
    access_log off;
    client_body_temp_path $dest/logs/body;
    proxy_temp_path $dest/logs/proxy;
    fastcgi_temp_path $dest/logs/fastcgi;
    uwsgi_temp_path $dest/logs/uwsgi;
    scgi_temp_path $dest/logs/scgi;
    server {
        listen $port reuseport;
        root $dest/html;
    }
}
CONF
/usr/sbin/nginx -t -p "$dest" -c "$dest/nginx.conf"
