#!/usr/bin/perl
# Two workers taking turns on the listening socket (accept_mutex on, so the
# listening events are deleted and added again all the time; multi_accept
# on), and two workers with a listening socket each (reuseport), under a wrk
# run that opens a new connection per request.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;

rp_case('accept-mutex', sub {
    my ($mode, $dir) = @_;
    my $ng = nginx_start($mode, $dir, workers => 2, events => <<'EOF2', http => <<'EOF3');
    accept_mutex on;
    accept_mutex_delay 50ms;
    multi_accept on;
EOF2
    log_format w '$pid';
    server {
        listen 127.0.0.1:%%PORT_http%%;
        access_log %%DIR%%/w.log w;
        location / {
            return 200 "ok\n";
        }
    }
EOF3
    my $url = 'http://127.0.0.1:' . $ng->port('http') . '/';
    my ($rc, $out) = run_cmd(30, 'wrk', '-t', '2', '-c', '32', '-d', '3s',
        '--timeout', '5s', '-H', 'Connection: close', $url);
    my ($n) = $out =~ /(\d+) requests in/;
    cmp_ok($n // 0, '>', 200, 'wrk made requests') or diag($out);
    unlike($out, qr/Non-2xx|Socket errors/, 'wrk: no errors') or diag($out);
    my %per;
    $per{$_}++ for split /\n/, RPNginx::slurp("$dir/w.log");
    diag("accept-mutex [$mode]: $n requests, per worker: "
        . join ', ', map { "$_ $per{$_}" } sort keys %per);
    $ng->stop;
});

rp_case('accept-reuseport', sub {
    my ($mode, $dir) = @_;
    my $ng = nginx_start($mode, $dir, workers => 2, http => <<'EOF3');
    log_format w '$pid';
    server {
        listen 127.0.0.1:%%PORT_http%% reuseport;
        access_log %%DIR%%/w.log w;
        location / {
            return 200 "ok\n";
        }
    }
EOF3
    my $url = 'http://127.0.0.1:' . $ng->port('http') . '/';
    my ($rc, $out) = run_cmd(30, 'wrk', '-t', '2', '-c', '32', '-d', '3s',
        '--timeout', '5s', '-H', 'Connection: close', $url);
    my ($n) = $out =~ /(\d+) requests in/;
    cmp_ok($n // 0, '>', 200, 'wrk made requests') or diag($out);
    unlike($out, qr/Non-2xx|Socket errors/, 'wrk: no errors') or diag($out);
    my %per;
    $per{$_}++ for split /\n/, RPNginx::slurp("$dir/w.log");
    is(scalar keys %per, 2, 'both workers accepted on their own sockets')
        or diag(explain(\%per));
    diag("accept-reuseport [$mode]: $n requests, per worker: "
        . join ', ', map { "$_ $per{$_}" } sort keys %per);
    $ng->stop;
});

done_testing;
