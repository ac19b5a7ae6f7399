#!/usr/bin/perl
# TLS with a self-signed certificate made at test time: HTTP/1.1 and HTTP/2
# (ALPN), byte-exact downloads with sendfile on (nginx falls back to
# SSL_write), uploads, keep-alive reuse, multiplexed streams and h2load.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);

my $data = "$BUILD/data/tls";
make_path($data);
my %size = ('1k' => 1024, '1m' => 1 << 20, '20m' => 20 << 20);
for (keys %size) {
    make_file("$data/$_", $size{$_}) unless (-s "$data/$_" // 0) == $size{$_};
}
my %sha = map { $_ => file_sha256("$data/$_") } keys %size;

my ($rc, $out) = run_cmd(60, 'openssl', 'req', '-x509', '-newkey',
    'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=localhost', '-keyout', "$data/key.pem",
    '-out', "$data/cert.pem");
BAIL_OUT("openssl req failed: $out") if $rc;

sub start {
    my ($mode, $dir, $h2) = @_;
    my ($up) = hash_upstream();
    my $listen = $h2 ? 'ssl http2' : 'ssl';
    return nginx_start($mode, $dir, http => <<"EOF2");
    client_max_body_size 64m;
    sendfile on;
    ssl_certificate $data/cert.pem;
    ssl_certificate_key $data/key.pem;
    server {
        listen 127.0.0.1:%%PORT_https%% $listen;
        root $data;
        location /up {
            proxy_pass http://127.0.0.1:$up;
        }
    }
EOF2
}

for my $h2 (0, 1) {
    rp_case($h2 ? 'tls-http2' : 'tls-http1', sub {
        my ($mode, $dir) = @_;
        my $ng = start($mode, $dir, $h2);
        my $base = 'https://127.0.0.1:' . $ng->port('https');
        my @v = ('-k', $h2 ? '--http2' : '--http1.1');
        my $ver = $h2 ? '2' : '1.1';
        for my $n (sort keys %size) {
            my ($rc, $out) = curl(@v, '-o', "$dir/out", '-w',
                '%{http_code} %{http_version}', "$base/$n");
            is($out, "200 $ver", "$n: status 200 over HTTP/$ver on TLS");
            is(file_sha256("$dir/out"), $sha{$n}, "$n: sha256");
        }

        # several downloads: one connection (keep-alive for HTTP/1.1,
        # multiplexed streams for HTTP/2)
        my @names = qw(20m 1m 1k 1m 20m 1k);
        my @par = $h2 ? ('--parallel', '--parallel-max', '6') : ();
        my ($rc, $out) = curl(@v, @par, '-w', '%{num_connects}\n',
            (map { ("$base/$names[$_]", '-o', "$dir/p$_") } 0 .. $#names));
        is($rc, 0, 'several: curl ok') or diag($out);
        my $connects = 0;
        $connects += $_ for $out =~ /^(\d+)$/mg;
        is($connects, 1, 'several: one TLS connection for all') or diag($out);
        for (0 .. $#names) {
            is(file_sha256("$dir/p$_"), $sha{ $names[$_] },
                "several $_ ($names[$_]): sha256");
        }
        unlink map { "$dir/p$_" } 0 .. $#names;

        ($rc, $out) = curl(@v, '--data-binary', "\@$data/20m", "$base/up");
        like($out, qr/^length=@{[20 << 20]} sha256=$sha{'20m'} /,
            '20 MiB upload over TLS arrived byte-exact');

        # nginx sniffs the first byte with MSG_PEEK to tell TLS from HTTP
        (my $plain = $base) =~ s/^https/http/;
        ($rc, $out) = curl('-w', '\n%{http_code}', "$plain/1k");
        like($out, qr/plain HTTP request was sent to HTTPS port.*\n400$/s,
            'plain HTTP on the TLS port: 400 with nginx\'s page');

        if ($h2) {
            ($rc, $out) = run_cmd(60, 'h2load', '-n', '2000', '-c', '4',
                '-m', '16', '-t', '1', "$base/1k");
            like($out, qr/requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout/,
                'h2load over TLS: 2000 requests succeeded') or diag($out);
            like($out, qr/Application protocol: h2/, 'h2load: ALPN h2');
            like($out, qr/traffic: .*\(2048000\) data/,
                'h2load: exactly 2000 x 1 KiB of DATA') or diag($out);
        }
        $ng->stop;
    });
}

done_testing;
