#!/usr/bin/perl
# HTTP/2 in clear text (prior knowledge): byte-exact downloads, multiplexed
# parallel streams on one connection, an uploaded body, and an h2load run.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);

my $data = "$BUILD/data/http2";
make_path($data);
my %size = ('1k' => 1024, '1m' => 1 << 20, '20m' => 20 << 20);
for (keys %size) {
    make_file("$data/$_", $size{$_}) unless (-s "$data/$_" // 0) == $size{$_};
}
my %sha = map { $_ => file_sha256("$data/$_") } keys %size;

rp_case('http2', sub {
    my ($mode, $dir) = @_;
    my ($up) = hash_upstream();
    my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    client_max_body_size 64m;
    server {
        listen 127.0.0.1:%%PORT_http%% http2;
        root $data;
        location /up {
            proxy_pass http://127.0.0.1:$up;
        }
    }
EOF2
    my $base = 'http://127.0.0.1:' . $ng->port('http');
    my @h2 = ('--http2-prior-knowledge');
    for my $n (sort keys %size) {
        my ($rc, $out) = curl(@h2, '-o', "$dir/out", '-w',
            '%{http_code} %{http_version}', "$base/$n");
        is($out, '200 2', "$n: status 200 over HTTP/2");
        is(file_sha256("$dir/out"), $sha{$n}, "$n: sha256");
    }

    # Several transfers at once.  curl 7.88 cannot multiplex streams over
    # prior knowledge ("Error in the HTTP2 framing layer" from curl itself),
    # so these are separate connections; h2load below multiplexes.
    my @names = qw(20m 1m 1k 1m 20m 1k);
    my ($rc, $out) = curl(@h2, '--parallel', '--parallel-immediate',
        '--parallel-max', '6',
        (map { ("$base/$names[$_]", '-o', "$dir/p$_") } 0 .. $#names));
    is($rc, 0, 'parallel: curl ok') or diag($out);
    for (0 .. $#names) {
        is(file_sha256("$dir/p$_"), $sha{ $names[$_] },
            "parallel transfer $_ ($names[$_]): sha256");
    }
    unlink map { "$dir/p$_" } 0 .. $#names;

    # clients that give up mid-download (connection closed with streams
    # open), then the next ones are served byte-exact
    ($rc, $out) = curl(@h2, '--parallel', '--parallel-immediate',
        '--limit-rate', '4M', '--max-time', '1',
        (map { ("$base/20m", '-o', '/dev/null') } 1 .. 4));
    isnt($rc, 0, 'aborting clients did stop early');
    ($rc, $out) = curl(@h2, '-o', "$dir/out", "$base/20m");
    is(file_sha256("$dir/out"), $sha{'20m'}, 'after the aborts: 20m sha256');

    ($rc, $out) = curl(@h2, '--data-binary', "\@$data/20m", "$base/up");
    like($out, qr/^length=@{[20 << 20]} sha256=$sha{'20m'} /,
        '20 MiB upload over HTTP/2 arrived byte-exact');

    # many streams per connection: small responses, then 1 MiB ones whose
    # DATA must add up exactly
    for my $run (['1k', 4000, 8, 16], ['1m', 64, 2, 8]) {
        my ($n, $count, $conns, $streams) = @$run;
        ($rc, $out) = run_cmd(60, 'h2load', '-n', $count, '-c', $conns,
            '-m', $streams, '-t', '1', "$base/$n");
        like($out, qr/requests: $count total, $count started, $count done, $count succeeded, 0 failed, 0 errored, 0 timeout/,
            "h2load $n: $count requests succeeded") or diag($out);
        like($out, qr/status codes: $count 2xx/, "h2load $n: all 2xx");
        my $bytes = $count * $size{$n};
        like($out, qr/traffic: .*\($bytes\) data/,
            "h2load $n: exactly $bytes bytes of DATA") or diag($out);
    }
    $ng->stop;
});

done_testing;
