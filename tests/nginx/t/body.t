#!/usr/bin/perl
# Request bodies reach the upstream byte-exact: a proxied upstream answers
# with the length and sha256 of what it got.  /up buffers the body first
# (to a temp file when large), /stream passes it on as it arrives (HTTP/1.1,
# chunked to the upstream when the client sent chunked).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use Time::HiRes qw(sleep);

my $data = "$BUILD/data/body";
make_path($data);
make_file("$data/8m", 8 << 20) unless (-s "$data/8m" // 0) == 8 << 20;
make_file("$data/1m", 1 << 20) unless (-s "$data/1m" // 0) == 1 << 20;
my %sha = map { $_ => file_sha256("$data/$_") } qw(8m 1m);

sub start {
    my ($mode, $dir) = @_;
    my ($up) = hash_upstream();
    my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    client_max_body_size 64m;
    server {
        listen 127.0.0.1:%%PORT_http%%;
        location /up {
            proxy_pass http://127.0.0.1:$up;
        }
        location /small {
            client_max_body_size 1k;
            proxy_pass http://127.0.0.1:$up;
        }
        location /stream {
            proxy_pass http://127.0.0.1:$up;
            proxy_http_version 1.1;
            proxy_request_buffering off;
        }
    }
EOF2
    return $ng;
}

sub expect {
    my ($len, $sha, $te) = @_;
    return "length=$len sha256=$sha" . (defined $te ? " te=$te" : '');
}

rp_case('body-large', sub {
    my ($mode, $dir) = @_;
    my $ng = start($mode, $dir);
    my $base = 'http://127.0.0.1:' . $ng->port('http');
    for my $loc (qw(up stream)) {
        my ($rc, $out) = curl('-H', 'Expect:', '--data-binary', "\@$data/8m",
            "$base/$loc");
        is($rc, 0, "$loc: curl ok");
        like($out, qr/^\Q${\ expect(8 << 20, $sha{'8m'}, 'length')}\E$/m,
            "$loc: 8 MiB body arrived byte-exact");
    }
    # the same with "Expect: 100-continue", curl's default for large bodies
    my ($rc, $out) = curl('--data-binary', "\@$data/8m", "$base/up");
    like($out, qr/^\Q${\ expect(8 << 20, $sha{'8m'})}\E/m,
        'Expect: 100-continue: body arrived byte-exact');
    $ng->stop;
});

rp_case('body-chunked', sub {
    my ($mode, $dir) = @_;
    my $ng = start($mode, $dir);
    my $port = $ng->port('http');
    my $base = "http://127.0.0.1:$port";
    my ($rc, $out) = curl('-H', 'Transfer-Encoding: chunked', '-H', 'Expect:',
        '--data-binary', "\@$data/1m", "$base/up");
    like($out, qr/^\Q${\ expect(1 << 20, $sha{'1m'}, 'length')}\E$/m,
        'curl chunked, buffered: dechunked byte-exact');
    ($rc, $out) = curl('-H', 'Transfer-Encoding: chunked', '-H', 'Expect:',
        '--data-binary', "\@$data/1m", "$base/stream");
    like($out, qr/^\Q${\ expect(1 << 20, $sha{'1m'}, 'chunked')}\E$/m,
        'curl chunked, unbuffered: passed on chunked, byte-exact');

    # 2000 chunks of varied sizes in one write, chunk extensions included
    open my $fh, '<:raw', "$data/1m" or die;
    read $fh, my $src, 1 << 20;
    my ($body, $off, $i) = ('', 0, 0);
    while ($off < length $src && $i < 2000) {
        my $n = 1 + ($i * 7919) % 1021;
        $n = length($src) - $off if $off + $n > length $src;
        $body .= sprintf("%x%s\r\n", $n, $i % 5 ? '' : ';ext=1')
            . substr($src, $off, $n) . "\r\n";
        $off += $n;
        $i++;
    }
    my $want = substr($src, 0, $off);
    $body .= "0\r\n\r\n";
    for my $loc (qw(up stream)) {
        my $r = raw_request($port, "POST /$loc HTTP/1.1\r\nHost: t\r\n"
            . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n$body");
        is($r && $r->{status}, 200, "$loc: 2000 small chunks: status");
        like($r ? $r->{body} : '',
            qr/^\Q${\ expect(length $want, data_sha256($want))}\E/,
            "$loc: 2000 small chunks: byte-exact");
    }
    $ng->stop;
});

rp_case('body-slow', sub {
    my ($mode, $dir) = @_;
    my $ng = start($mode, $dir);
    my $port = $ng->port('http');
    open my $fh, '<:raw', "$data/1m" or die;
    read $fh, my $src, 300000;
    my @piece = map { substr($src, $_ * 30000, 30000) } 0 .. 9;
    for my $loc (qw(up stream)) {
        # Content-Length, headers and body in ten pieces, 150 ms apart
        my $c = raw_connect($port);
        syswrite $c, "POST /$loc HTTP/1.1\r\nHost: t\r\n";
        sleep 0.15;
        syswrite $c, "Content-Length: 300000\r\nConnection: close\r\n\r\n";
        for (@piece) { sleep 0.15; syswrite $c, $_ }
        my $buf = '';
        my $r = read_response($c, \$buf, 30);
        like($r ? $r->{body} : '',
            qr/^\Q${\ expect(300000, data_sha256($src))}\E/,
            "$loc: slow Content-Length body byte-exact");
        close $c;

        # chunked, one chunk per piece, 150 ms apart
        $c = raw_connect($port);
        syswrite $c, "POST /$loc HTTP/1.1\r\nHost: t\r\n"
            . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        for (@piece) {
            sleep 0.15;
            syswrite $c, sprintf("%x\r\n", length) . $_ . "\r\n";
        }
        sleep 0.15;
        syswrite $c, "0\r\n\r\n";
        $buf = '';
        $r = read_response($c, \$buf, 30);
        like($r ? $r->{body} : '',
            qr/^\Q${\ expect(300000, data_sha256($src))}\E/,
            "$loc: slow chunked body byte-exact");
        close $c;
    }
    $ng->stop;
});

# A body over client_max_body_size: 413, and nginx keeps reading (lingering
# close) so the client can finish sending without a reset and read the 413.
rp_case('body-reject', sub {
    my ($mode, $dir) = @_;
    my $ng = start($mode, $dir);
    my $port = $ng->port('http');
    local $SIG{PIPE} = 'IGNORE';
    open my $fh, '<:raw', "$data/8m" or die;
    read $fh, my $src, 8 << 20;
    for my $i (1 .. 3) {
        my $c = raw_connect($port);
        my $req = "POST /small HTTP/1.1\r\nHost: t\r\n"
            . "Content-Length: " . length($src) . "\r\n\r\n$src";
        my ($off, $err) = (0, '');
        while ($off < length $req) {
            my $n = syswrite($c, $req, 262144, $off);
            if (!defined $n) { $err = "$!"; last }
            $off += $n;
        }
        is($err, '', "413 #$i: the whole 8 MiB body could be sent");
        my $buf = '';
        my $r = read_response($c, \$buf, 20);
        is($r && $r->{status}, 413, "413 #$i: response is 413");
        my $eof = sysread($c, my $x, 1);
        ok(defined $eof && $eof == 0, "413 #$i: then a clean EOF");
        close $c;
    }
    my ($rc, $out) = curl('-H', 'Expect:', '--data-binary', "\@$data/8m",
        '-w', '%{http_code}', "http://127.0.0.1:$port/small");
    like($out, qr/413$/, 'curl: 413');
    is($rc, 0, 'curl: no transfer error');
    $ng->stop(errors => qr/client intended to send too large body/);
});

done_testing;
