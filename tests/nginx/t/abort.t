#!/usr/bin/perl
# Clients that go away mid-response: after reading a little, without
# reading at all (RST), or right after sending the request.  nginx must
# notice each one promptly (the request is logged, short of the full
# size), keep serving everyone else byte-exact, and log nothing alarming.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use Time::HiRes qw(sleep time);

my $data = "$BUILD/data/abort";
make_path($data);
make_file("$data/20m", 20 << 20) unless (-s "$data/20m" // 0) == 20 << 20;
make_file("$data/1k", 1024) unless (-s "$data/1k" // 0) == 1024;
my %sha = map { $_ => file_sha256("$data/$_") } qw(20m 1k);

rp_case('client-abort', sub {
    my ($mode, $dir) = @_;
    my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    log_format ab '\$request_uri \$status \$bytes_sent "\$request_completion"';
    server {
        listen 127.0.0.1:%%PORT_http%%;
        access_log %%DIR%%/ab.log ab;
        root $data;
        sendfile on;
    }
    server {
        listen 127.0.0.1:%%PORT_nosf%%;
        access_log %%DIR%%/ab.log ab;
        root $data;
        sendfile off;
    }
EOF2
    # a download that runs through all the aborts and must stay byte-exact
    my $bg = RPNginx::perl_child(sub {
        my ($code, $h) = curl_fetch('http://127.0.0.1:' . $ng->port('http')
            . '/20m?bg', "$dir/bg", '--limit-rate', '8M');
        open my $fh, '>', "$dir/bg.res";
        print $fh "$code $h\n";
        close $fh;
    });

    my @aborted;
    for my $port ($ng->port('http'), $ng->port('nosf')) {
        for my $i (1 .. 5) {
            for my $style (qw(read reset early)) {
                my $uri = "/20m?$style$i-$port";
                push @aborted, $uri;
                my $c = raw_connect($port);
                syswrite $c, "GET $uri HTTP/1.1\r\nHost: t\r\n\r\n";
                if ($style eq 'read') {
                    my $got = 0;
                    while ($got < 65536) {
                        my $r = sysread($c, my $b, 16384) or last;
                        $got += $r;
                    }
                } elsif ($style eq 'reset') {
                    sleep 0.1;
                    linger_reset($c);
                }
                close $c;
            }
        }
    }
    my $logged = sub {
        my %l;
        for (split /\n/, RPNginx::slurp("$dir/ab.log")) {
            my ($uri, $status, $bytes, $done) = split ' ';
            $l{$uri} = [$status, $bytes, $done];
        }
        return \%l;
    };
    ok(wait_until(10, sub { my $l = $logged->(); !grep { !$l->{$_} } @aborted }),
        'every aborted request finished within 10 s')
        or diag('not logged: ' . join ' ', grep { !$logged->()->{$_} } @aborted);
    my $l = $logged->();
    my @full = grep { $l->{$_} && $l->{$_}[1] >= 20 << 20 } @aborted;
    is("@full", '', 'no aborted request counted as fully sent');
    my @done = grep { $l->{$_} && $l->{$_}[2] eq '"OK"' } @aborted;
    is("@done", '', 'no aborted request marked complete');

    # everyone else is still served
    for my $port ($ng->port('http'), $ng->port('nosf')) {
        my ($code, $h) = curl_fetch("http://127.0.0.1:$port/20m", "$dir/out");
        is($h, $sha{'20m'}, "port $port: 20 MiB byte-exact after the aborts");
        ($code, $h) = curl_fetch("http://127.0.0.1:$port/1k", "$dir/out");
        is($h, $sha{'1k'}, "port $port: 1 KiB byte-exact after the aborts");
    }
    ok(wait_until(30, sub { -s "$dir/bg.res" }), 'background download ended');
    is(RPNginx::slurp("$dir/bg.res"), "200 $sha{'20m'}\n",
        'background download during the aborts: byte-exact');
    kill_child($bg);
    $ng->stop;
});

# A client that leaves while nginx waits for a slow upstream: nginx watches
# the client connection (ngx_http_upstream_check_broken_connection) and ends
# the request with 499 at once, not when the upstream answers 3 s later.
# bytes the kernel has not sent yet on $sock (SIOCOUTQNSD)
sub unsent {
    my ($sock) = @_;
    my $n = pack('i', 0);
    ioctl($sock, 0x894B, $n) or return 0;
    return unpack('i', $n);
}

rp_case('client-abort-proxied', sub {
    my ($mode, $dir) = @_;
    my ($up) = hash_upstream(delay => 3);
    my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    log_format ab '\$request_uri \$status \$request_time';
    server {
        listen 127.0.0.1:%%PORT_http%%;
        access_log %%DIR%%/ab.log ab;
        location / {
            proxy_pass http://127.0.0.1:$up;
        }
    }
EOF2
    my $port = $ng->port('http');
    my @c;
    for my $style (qw(fin reset fin2 fin-pipelined)) {
        my $c = raw_connect($port);
        print $c "GET /$style HTTP/1.1\r\nHost: t\r\n\r\n";
        # 96 KiB of pipelined requests behind it: more than the module
        # takes into its receive queue (64 KiB), so the FIN waits in the
        # kernel behind unread bytes, as it does with epoll
        print $c "GET /next HTTP/1.1\r\nHost: t\r\n\r\n" x (96 * 1024 / 34)
            if $style eq 'fin-pipelined';
        $c->flush;
        push @c, [$style, $c];
    }
    # every byte in nginx's socket, so the FIN follows them at once
    wait_until(2, sub { !grep { unsent($_->[1]) } @c })
        or diag('client data still unsent');
    sleep 0.5;
    my $t0 = time;
    for (@c) {
        linger_reset($_->[1]) if $_->[0] eq 'reset';
        close $_->[1];
    }
    my $all = sub {
        my $l = RPNginx::slurp("$dir/ab.log");
        return !grep { $l !~ m{^/\Q$_->[0]\E }m } @c;
    };
    ok(wait_until(2.2, $all), 'every abandoned request ended within 2.2 s')
        or diag('after ' . (time - $t0) . " s:\n" . RPNginx::slurp("$dir/ab.log"));
    wait_until(5, $all);
    my $l = RPNginx::slurp("$dir/ab.log");
    for (@c) {
        like($l, qr{^/$_->[0] 499 }m, "$_->[0]: logged 499 (client closed)");
    }
    $ng->stop;
});

done_testing;
