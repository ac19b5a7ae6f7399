#!/usr/bin/perl
# One reap delivering more events than the ring has entries (issue #13):
# the worker is stopped while 100 kept-alive connections each get a request,
# so the next wait reaps 100 completions at once with io_uring_entries 5.
# The old event list (8 per entry, 40 here) grew by malloc() inside the
# reap and dropped the event when that failed; a shim fails exactly that
# allocation (1280 bytes: 80 entries of 16).  Every request must be
# answered, and no "event list ... lost" alert logged.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use Time::HiRes qw(sleep);

my $shim = "$BUILD/shim/failsize.so";
make_path("$BUILD/shim");
my ($rc, $out) = RPNginx::run_cmd(60, 'cc', '-O2', '-shared', '-fPIC',
    '-o', $shim, "$FindBin::Bin/../shim/failsize.c");
die "cc failsize.so: $out" if $rc != 0;

my $n = 100;

rp_case('one-reap-many-events', sub {
    my ($mode, $dir) = @_;
    local $ENV{LD_PRELOAD} = $shim;
    local $ENV{RP_FAIL_MALLOC_SIZE} = 1280;
    my $ng = nginx_start($mode, $dir, connections => 256,
        events => (mode_info($mode)->{so} ? 'io_uring_entries 5;' : ''),
        http => <<'EOF2');
    keepalive_requests 1000;
    server {
        listen 127.0.0.1:%%PORT_http%%;
        location / { return 200 "ok\n"; }
    }
EOF2
    my $port = $ng->port('http');
    my @c = map { raw_connect($port) } 1 .. $n;
    my $first = 0;
    for my $c (@c) {
        print $c "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
        my $buf = '';
        my $r = read_response($c, \$buf, 10);
        $first++ if $r && $r->{status} == 200;
    }
    is($first, $n, "$n kept-alive connections served once");

    my ($w) = $ng->workers;
    kill 'STOP', $w;
    print $_ "GET / HTTP/1.1\r\nHost: t\r\n\r\n" for @c;
    sleep 0.3;
    kill 'CONT', $w;

    my $second = 0;
    for my $c (@c) {
        my $buf = '';
        my $r = read_response($c, \$buf, 10);
        $second++ if $r && $r->{status} == 200 && $r->{body} eq "ok\n";
    }
    is($second, $n, "all $n requests of one reap answered");
    unlike($ng->log_text, qr/event list .* lost/, 'no event lost');
    close $_ for @c;
    $ng->stop;
    $ng->check_log;
}, timeout => 120);

done_testing();
