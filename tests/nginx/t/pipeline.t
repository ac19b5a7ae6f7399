#!/usr/bin/perl
# Pipelining: 100 requests in one write on one connection, answered in
# order, every body byte-exact; then the same split at awkward offsets.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use Time::HiRes qw(sleep);

my $data = "$BUILD/data/pipeline";
make_path($data);
my @size = (0, 1, 100, 4096, 65537, 300000);
for my $s (@size) {
    make_file("$data/f$s", $s) unless -e "$data/f$s" && -s "$data/f$s" == $s
        || ($s == 0 && -e "$data/f$s");
}

sub requests {
    my @r;
    for my $i (0 .. 99) {
        if ($i % 3 == 0) {
            push @r, ["/echo/$i", "echo $i\n"];
        } else {
            my $s = $size[$i % @size];
            push @r, ["/f$s", RPNginx::slurp("$data/f$s")];
        }
    }
    return @r;
}

sub check_all {
    my ($c, $reqs, $what) = @_;
    my $buf = '';
    my $good = 0;
    for my $i (0 .. $#$reqs) {
        my $r = read_response($c, \$buf, 30);
        if (!$r) { fail("$what: response $i missing"); return }
        if ($r->{status} == 200 && $r->{body} eq $reqs->[$i][1]) {
            $good++;
        } else {
            fail("$what: response $i for $reqs->[$i][0] is wrong "
                . "(status $r->{status}, " . length($r->{body}) . ' bytes)');
            return;
        }
    }
    is($good, scalar @$reqs, "$what: all answered in order, byte-exact");
}

for my $sendfile (qw(on off)) {
    rp_case("pipeline-sendfile-$sendfile", sub {
        my ($mode, $dir) = @_;
        my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    sendfile $sendfile;
    large_client_header_buffers 4 8k;
    server {
        listen 127.0.0.1:%%PORT_http%%;
        root $data;
        location ~ ^/echo/(\\d+)\$ {
            return 200 "echo \$1\\n";
        }
    }
EOF2
        my @reqs = requests();
        my $port = $ng->port('http');
        my $all = join '', map { "GET $_->[0] HTTP/1.1\r\nHost: t\r\n\r\n" } @reqs;

        my $c = raw_connect($port);
        syswrite($c, $all) == length $all or die "short write";
        check_all($c, \@reqs, 'one write');
        close $c;

        # requests with headers larger than client_header_buffer_size (1k),
        # so nginx moves them into large buffers mid-read
        my @big = map {
            my $i = $_;
            ["/echo/$i", "echo $i\n", 'X-Big: ' . ('v' x (500 + 700 * ($i % 10))) . "\r\n"]
        } 0 .. 39;
        my $bigall = join '', map { "GET $_->[0] HTTP/1.1\r\nHost: t\r\n$_->[2]\r\n" } @big;
        $c = raw_connect($port);
        syswrite($c, $bigall) == length $bigall or die "short write";
        check_all($c, \@big, 'large headers');
        close $c;

        # the same bytes in pieces of 1..97 bytes, so requests straddle reads
        $c = raw_connect($port);
        my ($off, $n) = (0, 0);
        while ($off < length $all) {
            my $len = 1 + ($n++ * 37) % 97;
            syswrite $c, substr($all, $off, $len);
            $off += $len;
            sleep 0.001 if $n % 50 == 0;
        }
        check_all($c, \@reqs, 'split writes');
        close $c;
        $ng->stop;
    });
}

done_testing;
