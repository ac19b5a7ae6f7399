#!/usr/bin/perl
# Static files, byte-exact (sha256), with sendfile on and off, and with aio
# threads: empty, 1 KiB, 1 MiB, 3 MiB+ and 20 MiB files, a slow reader, a
# range, a HEAD, and parallel large fetches.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);

my $data = "$BUILD/data/static";
make_path($data);
my %size = ('empty' => 0, '1k' => 1024, '1m' => 1 << 20, '20m' => 20 << 20,
    'odd' => 3 * 1048576 + 12345);
my %sha;
for my $n (keys %size) {
    make_file("$data/$n", $size{$n}) unless -s "$data/$n" && -s "$data/$n" == $size{$n}
        || ($size{$n} == 0 && -e "$data/$n");
    $sha{$n} = file_sha256("$data/$n");
}

# aio threads reads in a thread pool and wakes the worker through the event
# method's notify (an eventfd)
my @variants = (
    ['static-sendfile', 'sendfile on;'],
    ['static-nosendfile', 'sendfile off;'],
    ['static-aio-threads', 'sendfile off; aio threads;'],
    ['static-sendfile-aio-threads', 'sendfile on; aio threads;'],
);

for my $v (@variants) {
    my ($case, $directives) = @$v;
    rp_case($case, sub {
        my ($mode, $dir) = @_;
        my $ng = nginx_start($mode, $dir, workers => 2, http => <<"EOF2");
    $directives
    tcp_nopush on;
    server {
        listen 127.0.0.1:%%PORT_http%%;
        root $data;
    }
EOF2
        my $base = 'http://127.0.0.1:' . $ng->port('http');
        for my $n (sort keys %size) {
            my ($code, $h, $len) = curl_fetch("$base/$n", "$dir/out");
            is($code, 200, "$n: status");
            is($len, $size{$n}, "$n: length");
            is($h, $sha{$n}, "$n: sha256");
        }
        # a range in the middle of the large file
        my ($code, $h, $len) = curl_fetch("$base/20m", "$dir/out",
            '-r', '1000000-5999999');
        is($code, 206, 'range: status');
        open my $fh, '<:raw', "$data/20m" or die;
        seek $fh, 1000000, 0;
        read $fh, my $want, 5000000;
        is($h, data_sha256($want), 'range: sha256 of 1000000-5999999');

        # a client reading at 16 MB/s: nginx waits for room in the socket
        # buffer again and again
        ($code, $h) = curl_fetch("$base/20m", "$dir/out", '--limit-rate', '16M');
        is($h, $sha{'20m'}, 'slow reader: 20 MiB sha256');

        my ($rc, $head) = curl('-I', "$base/1m");
        like($head, qr/^HTTP\/1\.1 200/m, 'HEAD: status');
        like($head, qr/^Content-Length: 1048576\r?$/mi, 'HEAD: length');

        # four large fetches at once, each byte-exact
        my @out = map { ('-o', "$dir/p$_") } 1 .. 4;
        ($rc, my $o) = curl('--parallel', '--parallel-max', '4',
            (map { "$base/20m" } 1 .. 4), @out);
        is($rc, 0, 'parallel: curl exit status') or diag($o);
        is(file_sha256("$dir/p$_"), $sha{'20m'}, "parallel $_: sha256")
            for 1 .. 4;
        unlink map { "$dir/p$_" } 1 .. 4;

        # what the worker asks the kernel for while it serves: io_uring_enter
        # and no epoll_wait in a ring mode, the reverse in epoll mode
        my $n = $ng->syscalls(sub {
            curl('--parallel', (map { ("$base/1m", '-o', '/dev/null') } 1 .. 20));
        });
        ok($n, 'strace attached to the workers')
            or diag(RPNginx::slurp("$dir/strace.out.log"));
        $n ||= {};
        if (mode_info($mode)->{ring}) {
            cmp_ok($n->{io_uring_enter} // 0, '>', 0, 'worker calls io_uring_enter');
            is($n->{epoll_wait} // 0, 0, 'worker never calls epoll_wait');
        } else {
            cmp_ok($n->{epoll_wait} // 0, '>', 0, 'worker calls epoll_wait');
            is($n->{io_uring_enter} // 0, 0, 'worker never calls io_uring_enter');
        }
        my @top = (sort { $n->{$b} <=> $n->{$a} } keys %$n)[0 .. 7];
        diag("$case [$mode] worker syscalls for 20 x 1 MiB: "
            . join ', ', map { "$_ $n->{$_}" } grep { defined } @top);
        $ng->stop;
    });
}

done_testing;
