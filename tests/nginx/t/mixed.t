#!/usr/bin/perl
# Everything at once for a few seconds on one nginx with two workers: wrk on
# a proxied location (upstream keepalive), h2load over TLS with multiplexed
# streams, byte-exact large downloads over plain HTTP, TLS and the proxy, and
# clients that walk away mid-response.  Nothing may fail, nothing may be
# corrupted.  RP_NGINX_SOAK=<seconds> makes it longer (default 5).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use Time::HiRes qw(sleep time);

my $data = "$BUILD/data/mixed";
make_path($data);
my %size = ('1k' => 1024, '64k' => 65536, '5m' => 5 << 20);
for (keys %size) {
    make_file("$data/$_", $size{$_}) unless (-s "$data/$_" // 0) == $size{$_};
}
my %sha = map { $_ => file_sha256("$data/$_") } keys %size;
my ($rc, $out) = run_cmd(60, 'openssl', 'req', '-x509', '-newkey', 'ec',
    '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=localhost', '-keyout', "$data/key.pem", '-out', "$data/cert.pem");
BAIL_OUT("openssl req failed: $out") if $rc;

my $secs = $ENV{RP_NGINX_SOAK} || 5;
my $h2n = 600 * $secs;

rp_case('mixed-load', sub {
    my ($mode, $dir) = @_;
    my $ng = nginx_start($mode, $dir, workers => 2, http => <<"EOF2");
    access_log off;
    # h2load does not reconnect when nginx ends a connection after
    # keepalive_requests (1000 by default, HTTP/2 too)
    keepalive_requests 1000000;
    upstream back {
        server 127.0.0.1:%%PORT_back%%;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:%%PORT_http%%;
        listen 127.0.0.1:%%PORT_https%% ssl http2;
        ssl_certificate $data/cert.pem;
        ssl_certificate_key $data/key.pem;
        root $data;
        location /p/ {
            proxy_pass http://back/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {
        listen 127.0.0.1:%%PORT_back%%;
        root $data;
    }
EOF2
    my $http = 'http://127.0.0.1:' . $ng->port('http');
    my $https = 'https://127.0.0.1:' . $ng->port('https');

    my $wrk = spawn_cmd(30 + $secs, "$dir/wrk.out", 'wrk', '-t', '1', '-c', '24',
        '-d', "${secs}s", '--timeout', '5s', "$http/p/1k");
    my $h2 = spawn_cmd(60 + 10 * $secs, "$dir/h2.out", 'h2load', '-n', $h2n, '-c', '6',
        '-m', '8', '-t', '1', "$https/64k");

    # byte-exact downloads over each path while the load runs
    my @fetch;
    for my $url ("$http/5m", "$https/5m", "$http/p/5m") {
        push @fetch, [$url, RPNginx::perl_child(sub {
            my $bad = 0;
            my $n = 0;
            my $t0 = time;
            while (time - $t0 < $secs - 1) {
                my ($code, $h) = curl_fetch($url, "$dir/f$$", '-k');
                $bad++ if $h ne $sha{'5m'};
                $n++;
            }
            open my $fh, '>', "$dir/fetch.$$";
            print $fh "$n $bad\n";
            close $fh;
        })];
    }
    # and clients leaving mid-response
    for my $i (1 .. 4 * $secs) {
        my $c = raw_connect($ng->port('http'));
        syswrite $c, "GET /" . ($i % 2 ? 'p/' : '') . "5m HTTP/1.1\r\nHost: t\r\n\r\n";
        sysread $c, my $b, 32768;
        linger_reset($c) if $i % 3 == 0;
        close $c;
        sleep 0.1;
    }
    for (@fetch) {
        my ($url, $p) = @$_;
        wait_cmd($p);
        my ($n, $bad) = split ' ', RPNginx::slurp("$dir/fetch.$p") || '0 0';
        cmp_ok($n, '>', 0, "$url: downloads made");
        is($bad, 0, "$url: all $n byte-exact");
    }
    wait_cmd($wrk);
    wait_cmd($h2);
    my $w = RPNginx::slurp("$dir/wrk.out");
    my ($wn) = $w =~ /(\d+) requests in/;
    cmp_ok($wn // 0, '>', 100, 'wrk on the proxy made requests') or diag($w);
    unlike($w, qr/Non-2xx|Socket errors/, 'wrk on the proxy: no errors') or diag($w);
    my $h = RPNginx::slurp("$dir/h2.out");
    like($h, qr/requests: $h2n total, $h2n started, $h2n done, $h2n succeeded, 0 failed, 0 errored, 0 timeout/,
        "h2load over TLS: $h2n succeeded") or diag($h);
    like($h, qr/traffic: .*\(@{[$h2n * 65536]}\) data/, 'h2load: exact DATA bytes')
        or diag($h);
    diag("mixed-load [$mode]: wrk " . ($wn // 0) . ' proxied requests');
    $ng->stop;
}, timeout => 120 + 2 * $secs);

done_testing;
