#!/usr/bin/perl
# What nginx's own suite found in completion mode (issue #12), one case per
# path, each byte-exact or status-exact:
# - PROXY protocol ahead of TLS: on an http listener (nginx reads the line,
#   then OpenSSL reads the socket), on a stream listener, and from nginx
#   itself (stream proxy_protocol + proxy_ssl: c->send() writes the line,
#   then OpenSSL writes the handshake)
# - request bodies with proxy_request_buffering off: headers and body in
#   one write larger than the buffers, and bodies split across reads;
#   plain, chunked and over TLS
# - a HEAD request through gunzip, then a GET on the same connection
# - gRPC (grpc_pass to nginx's own HTTP/2 server) keeping its upstream
#   connection alive
# - image_filter replacing a response (filter finalization) with
#   proxy_cache and proxy_store

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use IO::Socket::SSL;
use Time::HiRes qw(sleep);

my $data = "$BUILD/data/readwrite";
make_path("$data/gz", "$data/cache");
my ($rc, $out) = run_cmd(60, 'openssl', 'req', '-x509', '-newkey',
    'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=localhost', '-keyout', "$data/key.pem",
    '-out', "$data/cert.pem");
BAIL_OUT("openssl req failed: $out") if $rc;

my $text = join '', map { "line $_ of the gzip-only file\n" } 1 .. 2000;
{
    open my $fh, '|-', "gzip -9 -n > $data/gz/t.html.gz" or die "gzip: $!";
    print $fh $text;
    close $fh or die "gzip failed";
}
make_file("$data/notimage", 20000) unless (-s "$data/notimage" // 0) == 20000;

sub ssl_wrap {
    my ($c) = @_;
    IO::Socket::SSL->start_SSL($c, SSL_verify_mode => SSL_VERIFY_NONE,
        SSL_hostname => 'localhost', Timeout => 10)
        or die "start_SSL: $SSL_ERROR\n";
    return $c;
}

sub read_all {
    my ($c, $limit) = @_;
    my $buf = '';
    local $SIG{ALRM} = sub { die "read timed out\n" };
    alarm($limit || 10);
    while (1) {
        my $r = sysread($c, $buf, 65536, length $buf);
        last if !$r;
    }
    alarm 0;
    return $buf;
}

rp_case('proxy-protocol-before-tls', sub {
    my ($mode, $dir) = @_;
    my $ng = nginx_start($mode, $dir, http => <<"EOF2", stream => <<"EOF3");
    ssl_certificate $data/cert.pem;
    ssl_certificate_key $data/key.pem;
    server {
        listen 127.0.0.1:%%PORT_https%% ssl proxy_protocol;
        location / {
            return 200 "pp=\$proxy_protocol_addr:\$proxy_protocol_port tls=\$ssl_protocol\\n";
        }
    }
EOF2
    ssl_certificate $data/cert.pem;
    ssl_certificate_key $data/key.pem;
    server {
        listen 127.0.0.1:%%PORT_sback%% ssl proxy_protocol;
        return "pp=\$proxy_protocol_addr:\$proxy_protocol_port tls=\$ssl_protocol\\n";
    }
    server {
        listen 127.0.0.1:%%PORT_sfront%%;
        proxy_pass 127.0.0.1:%%PORT_sback%%;
        proxy_protocol on;
        proxy_ssl on;
    }
EOF3
    for my $i (1 .. 5) {
        my $c = raw_connect($ng->port('https'));
        syswrite($c, "PROXY TCP4 192.0.2.$i 127.0.0.1 4000$i 443\r\n");
        ssl_wrap($c);
        print $c "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
        like(read_all($c), qr/\r\n\r\npp=192\.0\.2\.$i:4000$i tls=TLS/,
            "http ssl proxy_protocol $i: the PROXY line's address, over TLS");
        close $c;
    }
    my ($rc, $out) = curl('-k', '--haproxy-protocol',
        'https://127.0.0.1:' . $ng->port('https') . '/');
    like($out, qr/^pp=127\.0\.0\.1:\d+ tls=TLS/, 'curl --haproxy-protocol');

    for my $i (1 .. 5) {
        my $c = raw_connect($ng->port('sback'));
        syswrite($c, "PROXY TCP4 198.51.100.$i 127.0.0.1 5000$i 443\r\n");
        ssl_wrap($c);
        like(read_all($c), qr/^pp=198\.51\.100\.$i:5000$i tls=TLS/,
            "stream ssl proxy_protocol $i");
        close $c;
    }
    for my $i (1 .. 5) {
        my $c = raw_connect($ng->port('sfront'));
        like(read_all($c), qr/^pp=127\.0\.0\.1:\d+ tls=TLS/,
            "stream proxy_protocol + proxy_ssl $i: PROXY line then handshake");
        close $c;
    }
    # the harness's probe of each listener sends no PROXY line
    $ng->stop(errors => qr/broken header: "" while reading PROXY protocol/);
});

rp_case('request-body-unbuffered', sub {
    my ($mode, $dir) = @_;
    my ($up) = hash_upstream();
    my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    ssl_certificate $data/cert.pem;
    ssl_certificate_key $data/key.pem;
    client_max_body_size 16m;
    client_header_buffer_size 1k;
    client_body_buffer_size 1k;
    server {
        listen 127.0.0.1:%%PORT_http%%;
        listen 127.0.0.1:%%PORT_https%% ssl;
        location / {
            proxy_pass http://127.0.0.1:$up;
            proxy_request_buffering off;
            proxy_http_version 1.1;
        }
        # \$request_body exists only if the body is in at most two buffers:
        # the header buffer's part and one read of the rest
        location /var {
            client_body_buffer_size 2k;
            add_header X-Body "\$request_body";
            proxy_pass http://127.0.0.1:$up;
            proxy_request_buffering off;
        }
    }
EOF2
    for my $tls (0, 1) {
        my $port = $ng->port($tls ? 'https' : 'http');
        my $body = '0123456789' x 128;
        my $c = raw_connect($port);
        ssl_wrap($c) if $tls;
        print $c "POST /var HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "Content-Length: " . length($body) . "\r\n\r\n$body";
        my $resp = read_all($c, 15);
        like($resp, qr/\r\nX-Body: \Q$body\E\r\n/,
            ($tls ? 'tls' : 'plain') . ': headers and a 1280-byte body in one '
            . 'write: $request_body holds all of it (two buffers)');
        close $c;
    }
    my @sizes = (100, 1500, 3000, 70000);
    for my $tls (0, 1) {
        my $port = $ng->port($tls ? 'https' : 'http');
        my $t = $tls ? 'tls' : 'plain';
        for my $chunked (0, 1) {
            for my $len (@sizes) {
                for my $split (0, 1) {
                    my $body = join '', map { chr(65 + $_ % 26) } 0 .. $len - 1;
                    my $wire = $chunked
                        ? sprintf("%x\r\n%s\r\n0\r\n\r\n", $len, $body) : $body;
                    my $head = "POST /u HTTP/1.1\r\nHost: localhost\r\n"
                        . "Connection: close\r\n"
                        . ($chunked ? "Transfer-Encoding: chunked\r\n"
                                    : "Content-Length: $len\r\n") . "\r\n";
                    my $c = raw_connect($port);
                    ssl_wrap($c) if $tls;
                    my $first = $split ? int(length($wire) / 3) : length $wire;
                    # headers and the first part in one write
                    print $c $head . substr($wire, 0, $first);
                    if ($split) {
                        $c->flush if $tls;
                        sleep 0.2;
                        print $c substr($wire, $first);
                    }
                    my $resp = read_all($c, 15);
                    my $name = "$t " . ($chunked ? 'chunked' : 'length')
                        . " $len" . ($split ? ' split' : ' one write');
                    like($resp, qr/\r\n\r\nlength=$len sha256=@{[data_sha256($body)]} /,
                        "$name: the body arrives whole and in order");
                    close $c;
                }
            }
        }
    }
    $ng->stop;
});

rp_case('gunzip-head', sub {
    my ($mode, $dir) = @_;
    my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    server {
        listen 127.0.0.1:%%PORT_http%%;
        root $data;
        location /gz/ {
            gzip_static always;
            gunzip on;
            gzip_vary on;
        }
    }
EOF2
    my $c = raw_connect($ng->port('http'));
    print $c "HEAD /gz/t.html HTTP/1.1\r\nHost: localhost\r\n\r\n";
    my $buf = '';
    # a HEAD response has headers only
    local $SIG{ALRM} = sub { die "HEAD response timed out\n" };
    alarm 10;
    while (index($buf, "\r\n\r\n") < 0) {
        sysread($c, $buf, 65536, length $buf) or last;
    }
    alarm 0;
    like($buf, qr{^HTTP/1\.1 200 }, 'HEAD through gunzip: 200');
    like($buf, qr/\r\nVary: Accept-Encoding\r\n/i, 'HEAD: Vary: Accept-Encoding');
    unlike($buf, qr/\r\nContent-Encoding:/i, 'HEAD: decompressed (no Content-Encoding)');
    substr($buf, 0, index($buf, "\r\n\r\n") + 4) = '';
    print $c "GET /gz/t.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    my $r = read_response($c, \$buf, 10);
    is($r && $r->{body}, $text, 'then a GET on the same connection: the whole text');
    close $c;
    $ng->stop;
});

rp_case('grpc-keepalive', sub {
    my ($mode, $dir) = @_;
    my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    log_format conn '\$connection \$request';
    upstream h2 {
        server 127.0.0.1:%%PORT_h2%%;
        keepalive 4;
    }
    server {
        listen 127.0.0.1:%%PORT_h2%% http2;
        access_log $dir/backend.log conn;
        location / {
            return 200 "grpc \$request_uri\\n";
        }
    }
    server {
        listen 127.0.0.1:%%PORT_http%%;
        location / {
            grpc_pass grpc://h2;
        }
    }
EOF2
    my $base = 'http://127.0.0.1:' . $ng->port('http');
    my ($rc, $out) = curl(map { "$base/r$_" } 1 .. 5);
    is($out, join('', map { "grpc /r$_\n" } 1 .. 5), 'five gRPC-proxied responses');
    ($rc, $out) = curl("$base/r6");
    is($out, "grpc /r6\n", 'a sixth on a new client connection');
    my $log = '';
    wait_until(5, sub { $log = RPNginx::slurp("$dir/backend.log") // '';
        ($log =~ tr/\n//) >= 6 });
    my %conn = map { /^(\d+) / ? ($1 => 1) : () } split /\n/, $log;
    is(scalar keys %conn, 1, 'all six on one kept-alive upstream connection')
        or diag($log);
    $ng->stop;
});

rp_case('image-filter-finalize', sub {
    my ($mode, $dir) = @_;
    my $so = "$RPNginx::MODULES_DIR/ngx_http_image_filter_module.so";
    rp_skip("no $so (libnginx-mod-http-image-filter)") unless -f $so;
    my $ng = nginx_start($mode, $dir, main => "load_module $so;", http => <<"EOF2");
    proxy_cache_path $dir/cache keys_zone=cache:1m;
    server {
        listen 127.0.0.1:%%PORT_http%%;
        root $data;
        location /cached {
            proxy_pass http://127.0.0.1:%%PORT_http%%/missing;
            proxy_cache cache;
            proxy_cache_valid any 1h;
            image_filter resize 150 100;
            error_page 415 = /empty;
        }
        location /stored {
            proxy_pass http://127.0.0.1:%%PORT_http%%/notimage;
            proxy_store on;
            proxy_temp_path $dir/tmp;
            image_filter_buffer 10m;
            image_filter resize 150 100;
            error_page 415 = /empty;
        }
        location /missing {
            return 404;
        }
        location /empty {
            return 204;
        }
    }
EOF2
    my $base = 'http://127.0.0.1:' . $ng->port('http');
    for my $i (1 .. 3) {
        for my $p (qw(cached stored)) {
            my ($rc, $out) = curl('-o', '/dev/null', '-w', '%{http_code}',
                "$base/$p");
            is($out, '204', "/$p $i: the filter's replacement response");
        }
    }
    $ng->stop;
});

done_testing;
