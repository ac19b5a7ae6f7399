#!/usr/bin/perl
# Timers on idle connections: keepalive_timeout 1s closes kept-alive
# connections after about a second (not at once, not never), and
# client_header_timeout 1s closes connections that sent no or half a
# request; send_timeout 1s gives up on a client that stops reading.  Bounds
# are generous: other work may load the machine.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use IO::Select;
use Time::HiRes qw(time sleep);
use File::Path qw(make_path);

my $data = "$BUILD/data/timeout";
make_path("$data/big");
make_file("$data/big/20m", 20 << 20) unless (-s "$data/big/20m" // 0) == 20 << 20;

# Wait for EOF on every socket; returns seconds from $t0 to each EOF
# (undef if none within $limit).
sub eof_times {
    my ($t0, $limit, @socks) = @_;
    my %when;
    my $sel = IO::Select->new(@socks);
    while ($sel->count && time < $t0 + $limit) {
        for my $s ($sel->can_read(0.05)) {
            my $r = sysread($s, my $b, 4096);
            if (!$r) {
                $when{ fileno $s } = time - $t0;
                $sel->remove($s);
            }
        }
    }
    return map { $when{ fileno $_ } } @socks;
}

rp_case('keepalive-timeout', sub {
    my ($mode, $dir) = @_;
    my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    keepalive_timeout 1s;
    client_header_timeout 1s;
    send_timeout 1s;
    log_format st '\$request_uri \$status \$bytes_sent';
    server {
        listen 127.0.0.1:%%PORT_http%%;
        access_log %%DIR%%/st.log st;
        location / {
            return 200 "ok\\n";
        }
        location /big {
            root $data;
        }
    }
EOF2
    my $port = $ng->port('http');

    # 20 kept-alive connections after one request each
    my @c = map { raw_connect($port) } 1 .. 20;
    my $served = 0;
    for my $c (@c) {
        print $c "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
        my $buf = '';
        my $r = read_response($c, \$buf, 10);
        $served++ if $r && $r->{status} == 200 && $r->{body} eq "ok\n";
    }
    is($served, 20, '20 connections served');
    my $t0 = time;
    # the first one goes on being used for a while: each request restarts
    # its timer
    my $c0 = shift @c;
    my $more = 0;
    for (1 .. 6) {
        sleep 0.3;
        print $c0 "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
        my $buf = '';
        my $r = read_response($c0, \$buf, 10);
        $more++ if $r && $r->{status} == 200;
    }
    is($more, 6, 'a connection kept busy past the timeout stays open');
    my @t = eof_times($t0, 8, @c);
    my @late = grep { !defined $_ || $_ > 6 } @t;
    my @early = grep { defined $_ && $_ < 0.5 } @t;
    is(scalar @late, 0, 'every idle keep-alive connection closed within 6 s')
        or diag("@{[map { $_ // 'never' } @t]}");
    is(scalar @early, 0, 'none closed before 0.5 s') or diag("@t");
    my $t1 = time;
    my ($t) = eof_times($t1, 8, $c0);
    ok(defined $t && $t >= 0.5 && $t <= 6,
        'the busy connection closes 1 s after its last request')
        or diag($t // 'never');

    # no request at all, and half a request line
    my $idle = raw_connect($port);
    my $half = raw_connect($port);
    print $half "GET / HTTP/1.1\r\nHo";
    my @h = eof_times(time, 8, $idle, $half);
    ok(defined $h[0] && $h[0] >= 0.5 && $h[0] <= 6,
        'connection without a request closed by client_header_timeout')
        or diag($h[0] // 'never');
    ok(defined $h[1] && $h[1] >= 0.5 && $h[1] <= 6,
        'half a request closed by client_header_timeout')
        or diag($h[1] // 'never');

    # a client that asks for 20 MiB and never reads: nginx's write waits
    # for room that never comes, and send_timeout ends it
    my $stuck = raw_connect($port);
    print $stuck "GET /big/20m HTTP/1.1\r\nHost: t\r\n\r\n";
    my $t2 = time;
    ok(wait_until(8, sub { RPNginx::slurp("$dir/st.log") =~ m{^/big/20m }m }),
        'stalled download ended by send_timeout within 8 s');
    my ($st) = RPNginx::slurp("$dir/st.log") =~ m{^/big/20m (\d+ \d+)}m;
    my ($code, $bytes) = split ' ', $st // '0 0';
    cmp_ok($bytes, '<', 20 << 20, 'stalled download: not all sent') ;
    cmp_ok(time - $t2, '>=', 0.9, 'stalled download: not given up before 1 s');
    close $stuck;
    $ng->stop(errors => qr/(?!)/);
});

done_testing;
