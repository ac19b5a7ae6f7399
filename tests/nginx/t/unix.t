#!/usr/bin/perl
# Unix-domain stream sockets: nginx listening on one (curl --unix-socket),
# and proxying to an upstream on one, byte-exact both ways.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);

my $data = "$BUILD/data/unix";
make_path($data);
make_file("$data/5m", 5 << 20) unless (-s "$data/5m" // 0) == 5 << 20;
make_file("$data/8m", 8 << 20) unless (-s "$data/8m" // 0) == 8 << 20;
my %sha = map { $_ => file_sha256("$data/$_") } qw(5m 8m);

rp_case('unix-socket', sub {
    my ($mode, $dir) = @_;
    my ($up) = hash_upstream();
    my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    client_max_body_size 64m;
    upstream back {
        server unix:%%DIR%%/back.sock;
        keepalive 4;
    }
    server {
        listen unix:%%DIR%%/front.sock;
        listen 127.0.0.1:%%PORT_http%%;
        root $data;
        location /p/ {
            proxy_pass http://back/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /up {
            proxy_pass http://127.0.0.1:$up;
        }
    }
    server {
        listen unix:%%DIR%%/back.sock;
        root $data;
    }
EOF2
    my @u = ('--unix-socket', "$dir/front.sock");
    my ($code, $h) = curl_fetch('http://t/5m', "$dir/out", @u);
    is($h, $sha{'5m'}, 'download over a unix socket: sha256');
    my ($rc, $out) = curl(@u, '-H', 'Expect:', '--data-binary', "\@$data/8m", 'http://t/up');
    like($out, qr/^length=@{[8 << 20]} sha256=$sha{'8m'} /,
        'upload over a unix socket arrived byte-exact');
    for (1 .. 3) {
        ($code, $h) = curl_fetch('http://127.0.0.1:' . $ng->port('http') . '/p/5m', "$dir/out");
        is($h, $sha{'5m'}, "download proxied to a unix-socket upstream #$_: sha256");
    }
    ($rc, $out) = curl(@u, '--parallel', (map { ('http://t/p/5m', '-o', "$dir/p$_") } 1 .. 4));
    is(file_sha256("$dir/p$_"), $sha{'5m'}, "unix in, unix upstream, parallel $_: sha256")
        for 1 .. 4;
    $ng->stop;
});

done_testing;
