#!/usr/bin/perl
# Configuration reload (HUP) while wrk drives load: no failed request, no
# socket error.  Graceful quit (QUIT) lets an in-flight slow download finish
# byte-exact while new connections are refused.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

my $data = "$BUILD/data/reload";
make_path($data);
make_file("$data/1k", 1024) unless (-s "$data/1k" // 0) == 1024;
make_file("$data/2m", 2 << 20) unless (-s "$data/2m" // 0) == 2 << 20;
my $sha2m = file_sha256("$data/2m");

# Phase 1 closes each connection after its response (Connection: close):
# a reload must cost nothing at all.  Phase 2 keeps connections alive: an
# old worker closing an idle kept-alive connection races with the client's
# next request on it (HTTP/1.1 allows that; epoll nginx shows it too), so
# there at most one read error per connection per reload is allowed, and
# nothing else.
rp_case('reload-under-load', sub {
    my ($mode, $dir) = @_;
    my $ng = nginx_start($mode, $dir, workers => 2, http => <<"EOF2");
    access_log off;
    server {
        listen 127.0.0.1:%%PORT_http%%;
        root $data;
    }
EOF2
    my $url = 'http://127.0.0.1:' . $ng->port('http') . '/1k';
    my $conns = 32;
    for my $phase (['close', 'Connection: close'], ['keepalive', 'X-Keep: 1']) {
        my ($name, $header) = @$phase;
        my $wrk = spawn_cmd(30, "$dir/wrk.out", 'wrk', '-t', '2', '-c', $conns,
            '-d', '4s', '--timeout', '5s', '-H', $header, $url);
        sleep 1;
        ok($ng->reload, "$name: first reload, new workers up");
        sleep 1.2;
        ok($ng->reload, "$name: second reload, new workers up");
        my $rc = wait_cmd($wrk);
        my $out = RPNginx::slurp("$dir/wrk.out");
        is($rc, 0, "$name: wrk exited 0") or diag($out);
        my ($n) = $out =~ /(\d+) requests in/;
        cmp_ok($n // 0, '>', 200, "$name: wrk made requests") or diag($out);
        unlike($out, qr/Non-2xx/, "$name: no non-2xx responses") or diag($out);
        if ($name eq 'close') {
            unlike($out, qr/Socket errors/, "$name: no socket errors")
                or diag($out);
        } else {
            my ($c, $r, $w, $t) = $out =~
                /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/;
            is(($c // 0) + ($w // 0) + ($t // 0), 0,
                "$name: no connect, write or timeout errors") or diag($out);
            cmp_ok($r // 0, '<=', 2 * $conns,
                "$name: read errors only from closed idle connections") or diag($out);
        }
        diag("reload-under-load [$mode] $name: " . ($n // 0) . ' requests'
            . ($out =~ /(Socket errors.*)/ ? ", $1" : ''));
    }
    $ng->stop;
});

rp_case('graceful-quit', sub {
    my ($mode, $dir) = @_;
    my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    server {
        listen 127.0.0.1:%%PORT_http%%;
        root $data;
        limit_rate 700k;
    }
EOF2
    my $port = $ng->port('http');
    my $dl = spawn_cmd(60, "$dir/curl.out", 'curl', '-sS', '-o', "$dir/slow",
        '-w', '%{http_code}', "http://127.0.0.1:$port/2m");
    ok(wait_until(10, sub { (-s "$dir/slow" // 0) > 100000 }),
        'slow download under way');
    $ng->check_ring($ng->{tails0});
    my $t0 = time;
    kill 'QUIT', $ng->pid;
    ok(wait_until(5, sub {
            !IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                Timeout => 1) }),
        'new connections refused after QUIT');
    my $rc = wait_cmd($dl);
    is(RPNginx::slurp("$dir/curl.out"), '200', 'slow download: status');
    is(file_sha256("$dir/slow"), $sha2m, 'slow download finished byte-exact');
    cmp_ok(time - $t0, '>', 0.5, 'download went on after QUIT');
    $ng->stop(no_ring => 1);
});

done_testing;
