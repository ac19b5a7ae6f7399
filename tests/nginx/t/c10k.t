#!/usr/bin/perl
# 10,000 idle keep-alive connections held open while wrk drives load on
# other connections: nginx holds them all (stub_status), the load sees no
# error, and afterwards every idle connection still answers.  Worker RSS
# is reported.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use POSIX ();
use Socket qw(PF_INET SOCK_STREAM IPPROTO_TCP pack_sockaddr_in inet_aton);

my $IDLE = $ENV{RP_NGINX_IDLE} || 10000;

# this process needs one descriptor per idle connection
BEGIN {
    my $want = ($ENV{RP_NGINX_IDLE} || 10000) + 500;
    if (POSIX::sysconf(POSIX::_SC_OPEN_MAX()) < $want && !$ENV{RP_NOFILE_RAISED}) {
        $ENV{RP_NOFILE_RAISED} = 1;
        exec 'sh', '-c', "ulimit -n $want 2>/dev/null; exec \"\$0\" \"\$@\"",
            $^X, $0, @ARGV;
    }
}

use RPNginx;
use Test::More;
use File::Path qw(make_path);
use Time::HiRes qw(time);

my $data = "$BUILD/data/c10k";
make_path($data);
make_file("$data/1k", 1024) unless (-s "$data/1k" // 0) == 1024;
my $body = RPNginx::slurp("$data/1k");

sub rss_kb {
    my ($pid) = @_;
    my ($kb) = RPNginx::slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)/m;
    return $kb // 0;
}

rp_case('c10k-idle', sub {
    my ($mode, $dir) = @_;
    my $max = POSIX::sysconf(POSIX::_SC_OPEN_MAX());
    rp_skip("RLIMIT_NOFILE is $max here, $IDLE client sockets need "
        . ($IDLE + 500)) if $max < $IDLE + 500;
    my $t0 = time;
    my $ng = nginx_start($mode, $dir, workers => 2,
        connections => $IDLE + 2000, rlimit => 2 * $IDLE + 4000,
        http => <<"EOF2");
    access_log off;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:%%PORT_http%% backlog=4096;
        root $data;
        location = /status {
            stub_status;
        }
    }
EOF2
    my $port = $ng->port('http');
    my %rss0 = map { $_ => rss_kb($_) } $ng->workers;
    my $addr = pack_sockaddr_in($port, inet_aton('127.0.0.1'));
    my @c;
    for (1 .. $IDLE) {
        socket(my $s, PF_INET, SOCK_STREAM, IPPROTO_TCP) or last;
        connect($s, $addr) or last;
        push @c, $s;
    }
    is(scalar @c, $IDLE, "$IDLE connections open");
    my $served = 0;
    for my $s (@c) {
        syswrite $s, "GET /1k HTTP/1.1\r\nHost: t\r\n\r\n";
    }
    for my $s (@c) {
        my $buf = '';
        my $r = read_response($s, \$buf, 20);
        $served++ if $r && $r->{status} == 200 && $r->{body} eq $body;
    }
    is($served, $IDLE, "$IDLE first requests served, now idle keep-alive");
    my $r = raw_request($port, "GET /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    my ($active) = ($r ? $r->{body} : '') =~ /Active connections: (\d+)/;
    cmp_ok($active // 0, '>=', $IDLE, "nginx holds all $IDLE (stub_status)")
        or diag($r ? $r->{body} : 'no status');
    my @w = $ng->workers;
    diag(sprintf "c10k-idle [%s]: worker %d VmRSS %d kB (was %d kB at start)",
        $mode, $_, rss_kb($_), $rss0{$_} // 0) for @w;

    # load beside the idle ones
    my ($rc, $out) = run_cmd(30, 'wrk', '-t', '2', '-c', '64', '-d', '4s',
        '--timeout', '5s', "http://127.0.0.1:$port/1k");
    my ($n) = $out =~ /(\d+) requests in/;
    cmp_ok($n // 0, '>', 200, 'wrk made requests beside the idle ones') or diag($out);
    unlike($out, qr/Non-2xx|Socket errors/, 'wrk: no errors') or diag($out);
    diag("c10k-idle [$mode]: wrk $n requests in 4 s beside $IDLE idle");

    # every idle connection is still there and answers
    $served = 0;
    syswrite $_, "GET /1k HTTP/1.1\r\nHost: t\r\n\r\n" for @c;
    for my $s (@c) {
        my $buf = '';
        my $r = read_response($s, \$buf, 20);
        $served++ if $r && $r->{status} == 200 && $r->{body} eq $body;
    }
    is($served, $IDLE, "all $IDLE idle connections answer a second request");
    close $_ for @c;
    @c = ();
    diag(sprintf "c10k-idle [%s]: %.1f s", $mode, time - $t0);
    $ng->stop;
}, timeout => 100);

done_testing;
