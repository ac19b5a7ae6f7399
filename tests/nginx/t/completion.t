#!/usr/bin/perl
# Completion mode (issue #6), run in every mode like the other cases:
#  - provided buffers far fewer than connections (io_uring_buffers 8 4k, 64
#    clients at once): ENOBUFS storms lose nothing, uploads reach the
#    upstream byte-exact and proxied downloads (upstream reads on the ring
#    too) come back byte-exact;
#  - 1 MiB uploads and downloads byte-exact, sendfile on and off, proxied;
#  - 100 pipelined keep-alive requests in one write with scarce buffers;
#  - a close with a receive still armed reaches the client at once (return
#    444 on a kept-alive connection: EOF in < 100 ms) and keepalive_timeout
#    1s closes after about a second, not later;
#  - $io_uring_stats is there in ring modes and shows the ring at work.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);

my $data = "$BUILD/data/completion";
make_path($data);
make_file("$data/1m", 1 << 20) unless (-s "$data/1m" // 0) == 1 << 20;
make_file("$data/256k", 256 << 10) unless (-s "$data/256k" // 0) == 256 << 10;
make_file("$data/1k", 1024) unless (-s "$data/1k" // 0) == 1024;
make_file("$data/8k", 8192) unless (-s "$data/8k" // 0) == 8192;
make_file("$data/9k", 9000) unless (-s "$data/9k" // 0) == 9000;
my %sha = map { $_ => file_sha256("$data/$_") } qw(1m 256k 1k 8k 9k);

# io_uring_* directives only where the module is loaded
sub ring_events {
    my ($mode, $text) = @_;
    return mode_info($mode)->{so} ? $text : '';
}

sub stats {
    my ($port) = @_;
    my $r = raw_request($port, "GET /stats HTTP/1.1\r\nHost: t\r\n"
        . "Connection: close\r\n\r\n", 10);
    my %st;
    if ($r) { $st{$1} = $2 while $r->{body} =~ /(\w+)=(\d+)/g }
    return ($r ? $r->{body} : '', \%st);
}

sub check_stats {
    my ($mode, $port, %want) = @_;
    my ($text, $st) = stats($port);
    if (!mode_info($mode)->{ring}) {
        pass("no \$io_uring_stats in $mode mode");
        return $st;
    }
    like($text, qr/\benters=\d+ .*\bsqes=\d+ .*\bcqes=\d+ .*\benobufs=\d+ .*\bbufs_in_use=\d+/,
        '$io_uring_stats: engine counters')
        or diag($text);
    diag("$mode: $text");
    if ($mode =~ /completion/) {
        ok(($st->{completion_reads} // 0) > 0, 'connections read in completion mode')
            or diag($text);
        for my $k (sort keys %want) {
            ok(($st->{$k} // 0) >= $want{$k}, "\$io_uring_stats: $k >= $want{$k}")
                or diag($text);
        }
    }
    return $st;
}

# Run $n clients at once, each in its own process; $code returns '' on
# success or a complaint.  Returns the complaints.
sub clients {
    my ($n, $code) = @_;
    my %kid;
    for my $i (1 .. $n) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            $SIG{ALRM} = sub { POSIX::_exit(3) };
            alarm 60;
            my $err = eval { $code->($i) } // "died: $@";
            if (length $err) {
                print STDERR "client $i: $err\n";
                POSIX::_exit(1);
            }
            POSIX::_exit(0);
        }
        $kid{$pid} = $i;
    }
    my @bad;
    for my $pid (keys %kid) {
        waitpid $pid, 0;
        push @bad, $kid{$pid} if $? != 0;
    }
    return @bad;
}

sub config {
    my ($up) = @_;
    return <<"EOF2";
    client_max_body_size 64m;
    keepalive_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT_http%%;
        root $data;
        location /up {
            proxy_pass http://127.0.0.1:$up;
        }
        location /stream {
            proxy_pass http://127.0.0.1:$up;
            proxy_http_version 1.1;
            proxy_request_buffering off;
        }
        location /proxy/ {
            proxy_pass http://127.0.0.1:%%PORT_origin%%/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /stats {
            return 200 "\$io_uring_stats\\n";
        }
        location = /drop {
            return 444;
        }
        location /ok {
            return 200 "ok\\n";
        }
    }
    server {
        listen 127.0.0.1:%%PORT_origin%%;
        root $data;
        sendfile off;
    }
EOF2
}

sub stats_location_ok {
    my ($mode) = @_;
    return mode_info($mode)->{so};
}

rp_case('completion-scarce-buffers', sub {
    my ($mode, $dir) = @_;
    my ($up) = hash_upstream();
    my $http = config($up);
    $http =~ s/^.*\$io_uring_stats.*$/            return 200 "none\\n";/m
        unless stats_location_ok($mode);
    my $ng = nginx_start($mode, $dir, http => $http,
        events => ring_events($mode, 'io_uring_buffers 8 4k;'));
    my $port = $ng->port('http');

    open my $fh, '<:raw', "$data/256k" or die;
    read $fh, my $body, 256 << 10;
    close $fh;

    # 64 uploads at once, each written in one go: nginx reads them all
    # through 8 buffers of 4 KiB
    my @bad = clients(64, sub {
        my ($i) = @_;
        my $loc = $i % 2 ? 'up' : 'stream';
        my $c = raw_connect($port);
        my $req = "POST /$loc HTTP/1.1\r\nHost: t\r\nContent-Length: "
            . length($body) . "\r\nConnection: close\r\n\r\n" . $body;
        my $off = 0;
        while ($off < length $req) {
            my $w = syswrite($c, $req, 65536, $off);
            return "write: $!" unless defined $w;
            $off += $w;
        }
        my $buf = '';
        my $r = read_response($c, \$buf, 50) or return 'no response';
        return "status $r->{status}" unless $r->{status} == 200;
        return "body: $r->{body}"
            unless $r->{body} =~ /^length=262144 sha256=$sha{'256k'}/;
        return '';
    });
    is("@bad", '', '64 concurrent 256 KiB uploads through 8 x 4k buffers: '
        . 'all byte-exact');

    # 64 proxied 1 MiB downloads at once: the upstream side reads on the
    # ring too, through the same 8 buffers
    @bad = clients(64, sub {
        my ($i) = @_;
        my $c = raw_connect($port);
        print $c "GET /proxy/1m HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        my $buf = '';
        my $r = read_response($c, \$buf, 50) or return 'no response';
        return "status $r->{status}" unless $r->{status} == 200;
        return 'body differs' unless data_sha256($r->{body}) eq $sha{'1m'};
        return '';
    });
    is("@bad", '', '64 concurrent proxied 1 MiB downloads: all byte-exact');

    # 100 pipelined requests in one write, scarce buffers
    my $c = raw_connect($port);
    my $all = join '', map { "GET /ok/$_ HTTP/1.1\r\nHost: t\r\n\r\n" } 1 .. 100;
    syswrite($c, $all) == length $all or die 'short write';
    my ($buf, $good) = ('', 0);
    for (1 .. 100) {
        my $r = read_response($c, \$buf, 30) or last;
        $good++ if $r->{status} == 200 && $r->{body} eq "ok\n";
    }
    is($good, 100, '100 pipelined requests in one write: all answered');
    close $c;

    check_stats($mode, $port, enobufs => 1);
    $ng->stop;
}, timeout => 240);

rp_case('completion-1m', sub {
    my ($mode, $dir) = @_;
    my ($up) = hash_upstream();
    my $http = config($up);
    $http =~ s/^.*\$io_uring_stats.*$/            return 200 "none\\n";/m
        unless stats_location_ok($mode);
    for my $sendfile (qw(on off)) {
        my $h = $http;
        $h =~ s/root \Q$data\E;/root $data;\n        sendfile $sendfile;/;
        my $sub = "$dir/sendfile-$sendfile";
        make_path($sub);
        my $ng = nginx_start($mode, $sub, http => $h);
        my $port = $ng->port('http');
        my $base = "http://127.0.0.1:$port";
        # small files (read into the send queue with sendfile on: up to
        # 8 KiB) and one just over that limit, twice each on one
        # connection, pipelined
        my $c = raw_connect($port);
        my @small = map { ($_, $_) } qw(1k 8k 9k);
        my $req = join '', map { "GET /$_ HTTP/1.1\r\nHost: t\r\n\r\n" } @small;
        syswrite($c, $req) == length $req or die 'short write';
        my ($buf, $good) = ('', 0);
        for my $f (@small) {
            my $r = read_response($c, \$buf, 30) or last;
            $good++ if $r->{status} == 200 && data_sha256($r->{body}) eq $sha{$f};
        }
        is($good, scalar @small, "sendfile $sendfile: 1k, 8k, 9k pipelined, byte-exact");
        close $c;
        if ($mode =~ /completion/ && $sendfile eq 'on') {
            # up to 8 KiB of file data is read into the queue, 9k is not
            my (undef, $st) = stats($port);
            is(($st->{preads} // 0) . ' ' . ($st->{sendfile_sends} // 0),
                '4 2', 'sendfile on: 1k and 8k read into the queue (preads 4),'
                . ' 9k sent with sendfile (sendfile_sends 2)');
        }
        for my $path (qw(/1m /proxy/1m)) {
            my ($code, $got, $size) = curl_fetch("$base$path", "$sub/out");
            is("$code $size", '200 ' . (1 << 20), "sendfile $sendfile: $path: 200, 1 MiB");
            is($got, $sha{'1m'}, "sendfile $sendfile: $path: byte-exact");
        }
        # the same twice on one kept-alive connection, and a slow reader
        my ($rc, $out) = curl('-o', "$sub/a", '-o', "$sub/b",
            "$base/1m", "$base/proxy/1m");
        is($rc, 0, "sendfile $sendfile: two downloads on one connection");
        is(file_sha256("$sub/a") . file_sha256("$sub/b"), $sha{'1m'} x 2,
            "sendfile $sendfile: both byte-exact");
        ($rc, $out) = curl('--limit-rate', '4M', '-o', "$sub/slow", "$base/1m");
        is(file_sha256("$sub/slow"), $sha{'1m'},
            "sendfile $sendfile: rate-limited reader byte-exact");
        for my $loc (qw(up stream)) {
            ($rc, $out) = curl('-H', 'Expect:', '--data-binary', "\@$data/1m",
                "$base/$loc");
            like($out, qr/^length=1048576 sha256=$sha{'1m'}/,
                "sendfile $sendfile: 1 MiB upload to /$loc byte-exact");
        }
        check_stats($mode, $port, completion_sends => 1,
            $sendfile eq 'on' ? (preads => 4, sendfile_sends => 1) : ());
        $ng->stop;
    }
}, timeout => 240);

rp_case('completion-close', sub {
    my ($mode, $dir) = @_;
    my ($up) = hash_upstream();
    my $http = config($up);
    $http =~ s/^.*\$io_uring_stats.*$/            return 200 "none\\n";/m
        unless stats_location_ok($mode);
    my $ng = nginx_start($mode, $dir, http => $http);
    my $port = $ng->port('http');

    # a kept-alive connection (its receive armed since the first request)
    # asks for 444: nginx closes it with nothing sent; the FIN must not
    # wait for anything
    my @late;
    for my $i (1 .. 10) {
        my $c = raw_connect($port);
        print $c "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n";
        my $buf = '';
        read_response($c, \$buf, 10) or die 'no first response';
        my $t0 = time;
        syswrite $c, "GET /drop HTTP/1.1\r\nHost: t\r\n\r\n";
        my $sel = IO::Select->new($c);
        my $eof;
        while (time < $t0 + 5) {
            $sel->can_read(0.5) or next;
            my $r = sysread($c, my $b, 4096);
            if (!$r) { $eof = time - $t0; last }
        }
        push @late, defined $eof ? sprintf('%.3f', $eof) : 'never'
            if !defined $eof || $eof >= 0.1;
        close $c;
    }
    is("@late", '', 'return 444 on a kept-alive connection: EOF in < 100 ms');

    # keepalive_timeout 1s: an idle connection sees EOF after about 1 s
    my @c = map { raw_connect($port) } 1 .. 10;
    for my $c (@c) {
        print $c "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n";
        my $buf = '';
        read_response($c, \$buf, 10) or die 'no response';
    }
    my $t0 = time;
    my %when;
    my $sel = IO::Select->new(@c);
    while ($sel->count && time < $t0 + 5) {
        for my $s ($sel->can_read(0.02)) {
            my $r = sysread($s, my $b, 4096);
            if (!$r) { $when{ fileno $s } = time - $t0; $sel->remove($s) }
        }
    }
    my @t = map { $when{ fileno $_ } } @c;
    my @off = grep { !defined $_ || $_ < 0.9 || $_ > 1.6 } @t;
    is(scalar @off, 0, 'keepalive_timeout 1s: EOF after 0.9..1.6 s')
        or diag(join ' ', map { defined $_ ? sprintf('%.3f', $_) : 'never' } @t);

    # a client that leaves during a response: the server's close with
    # bytes still queued must not hang or crash the worker
    for (1 .. 10) {
        my $c = raw_connect($port);
        print $c "GET /1m HTTP/1.1\r\nHost: t\r\n\r\n";
        sysread($c, my $b, 1000);
        linger_reset($c);
        close $c;
    }
    my $r = raw_request($port, "GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    is($r && $r->{body}, "ok\n", 'still serving after clients reset mid-response');

    check_stats($mode, $port);
    $ng->stop;
});

done_testing;
