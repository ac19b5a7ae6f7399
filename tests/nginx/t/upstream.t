#!/usr/bin/perl
# proxy_pass to an upstream (a second server block of the same nginx) with
# keepalive: every answer right, and the upstream sees few connections.
# When the upstream closes its idle kept-alive connections, nginx notices
# (the keepalive close handler) and never sends a request into a dead one;
# a refused connect gives 502.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use Time::HiRes qw(sleep);

my $data = "$BUILD/data/upstream";
make_path($data);
make_file("$data/big", 3 << 20) unless (-s "$data/big" // 0) == 3 << 20;
my $big_sha = file_sha256("$data/big");

rp_case('upstream-keepalive', sub {
    my ($mode, $dir) = @_;
    my $dead = RPNginx::free_port('tcp');
    my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    log_format conn '\$connection \$connection_requests \$request_uri \$status';
    upstream back {
        server 127.0.0.1:%%PORT_back%%;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:%%PORT_http%%;
        location / {
            proxy_pass http://back;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /dead {
            proxy_pass http://127.0.0.1:$dead;
        }
    }
    server {
        listen 127.0.0.1:%%PORT_back%%;
        access_log %%DIR%%/back.log conn;
        keepalive_requests 10000;
        keepalive_timeout 1s;
        location /k/ {
            return 200 "back \$request_uri\\n";
        }
        location /big {
            root $data;
        }
    }
EOF2
    my $port = $ng->port('http');

    # 300 requests in sequence on one client connection
    my $c = raw_connect($port);
    my $buf = '';
    my $good = 0;
    for my $i (1 .. 300) {
        print $c "GET /k/$i HTTP/1.1\r\nHost: t\r\n\r\n";
        my $r = read_response($c, \$buf, 20);
        last unless $r && $r->{status} == 200 && $r->{body} eq "back /k/$i\n";
        $good++;
    }
    is($good, 300, '300 sequential proxied requests answered right');
    # a large body through the kept-alive upstream connection, twice
    for (1 .. 2) {
        print $c "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";
        my $r = read_response($c, \$buf, 30);
        is($r ? data_sha256($r->{body}) : '', $big_sha, "3 MiB via proxy: sha256");
    }
    close $c;
    ok(wait_until(5, sub { (() = RPNginx::slurp("$dir/back.log") =~ /\n/g) >= 302 }),
        'upstream logged every request');
    my %conns = map { (split ' ')[0] => 1 } split /\n/, RPNginx::slurp("$dir/back.log");
    # 1 when nothing stalls; a pause over the upstream's 1 s keepalive
    # timeout on a loaded machine costs one more
    cmp_ok(scalar keys %conns, '<=', 5,
        'sequential: upstream saw at most 5 connections for 302 requests')
        or diag(scalar(keys %conns) . ' connections');

    # 400 requests over up to 8 client connections at once
    open my $cf, '>', "$dir/urls" or die;
    print $cf "url = \"http://127.0.0.1:$port/k/p$_\"\noutput = \"/dev/null\"\n"
        for 1 .. 400;
    close $cf;
    my ($rc, $out) = curl('--parallel', '--parallel-max', '8', '-K', "$dir/urls",
        '-w', '%{http_code}\n');
    is(scalar(() = $out =~ /^200$/mg), 400, 'parallel: 400 answers, all 200')
        or diag($out);
    ok(wait_until(5, sub { (() = RPNginx::slurp("$dir/back.log") =~ /\n/g) >= 702 }),
        'upstream logged every request');
    my @lines = split /\n/, RPNginx::slurp("$dir/back.log");
    %conns = map { (split ' ')[0] => 1 } @lines[302 .. $#lines];
    cmp_ok(scalar keys %conns, '<=', 40,
        'parallel: upstream connections reused (<= 40 for 400 requests)')
        or diag(scalar(keys %conns) . ' connections');
    my $reused = grep { (split ' ')[1] > 1 } @lines;
    cmp_ok($reused, '>=', 650, 'most upstream requests on a reused connection');

    # the upstream drops its idle connections after 1 s; nginx must have
    # closed its cached ends by then, so nothing goes into a dead one
    # (that would log "upstream prematurely closed connection")
    sleep 2.5;
    $c = raw_connect($port);
    $buf = '';
    $good = 0;
    for my $i (1 .. 50) {
        print $c "GET /k/after$i HTTP/1.1\r\nHost: t\r\n\r\n";
        my $r = read_response($c, \$buf, 20);
        last unless $r && $r->{status} == 200 && $r->{body} eq "back /k/after$i\n";
        $good++;
    }
    is($good, 50, 'after the upstream closed its idle connections: 50 answered');
    close $c;

    my $r = raw_request($port, "GET /dead HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 10);
    is($r && $r->{status}, 502, 'refused upstream connect: 502');
    $ng->stop(errors => qr/connect\(\) failed \(111: Connection refused\)/);
});

done_testing;
