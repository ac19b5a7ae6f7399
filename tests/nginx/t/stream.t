#!/usr/bin/perl
# The stream module (Debian's dynamic ngx_stream_module): TCP proxy both
# ways byte-exact, stream return, UDP proxy to an echo upstream and UDP
# return.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use IO::Socket::INET;
use IO::Select;

my $data = "$BUILD/data/stream";
make_path($data);
make_file("$data/20m", 20 << 20) unless (-s "$data/20m" // 0) == 20 << 20;
make_file("$data/8m", 8 << 20) unless (-s "$data/8m" // 0) == 8 << 20;
my %sha = map { $_ => file_sha256("$data/$_") } qw(20m 8m);

# UDP echo upstream in a child process
sub udp_echo {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Proto => 'udp') or die "udp bind: $!";
    my $port = $s->sockport;
    perl_child(sub {
        while (1) {
            my $peer = recv($s, my $d, 65536, 0);
            next unless defined $peer;
            send($s, $d, 0, $peer);
        }
    });
    close $s;
    return $port;
}

# Send each payload and wait for its echo; returns how many came back intact.
sub udp_exchange {
    my ($port, @payloads) = @_;
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'udp') or die "udp connect: $!";
    my $sel = IO::Select->new($c);
    my $good = 0;
    for my $p (@payloads) {
        send($c, $p->[0], 0) or last;
        $sel->can_read(5) or last;
        defined recv($c, my $got, 65536, 0) or last;
        last unless $got eq $p->[1];
        $good++;
    }
    close $c;
    return $good;
}

rp_case('stream-tcp', sub {
    my ($mode, $dir) = @_;
    my ($up) = hash_upstream();
    my $ng = nginx_start($mode, $dir, http => <<"EOF2", stream => <<"EOF3");
    server {
        listen 127.0.0.1:%%PORT_http%%;
        root $data;
    }
EOF2
    server {
        listen 127.0.0.1:%%PORT_tcp%%;
        proxy_pass 127.0.0.1:%%PORT_http%%;
    }
    server {
        listen 127.0.0.1:%%PORT_tcpup%%;
        proxy_pass 127.0.0.1:$up;
    }
    server {
        listen 127.0.0.1:%%PORT_ret%%;
        return "hello \$remote_addr\\n";
    }
EOF3
    my $tcp = 'http://127.0.0.1:' . $ng->port('tcp');
    my ($code, $h, $len) = curl_fetch("$tcp/20m", "$dir/out");
    is($code, 200, 'download through TCP proxy: status');
    is($h, $sha{'20m'}, 'download through TCP proxy: sha256');
    # four at once
    my ($rc, $out) = curl('--parallel', (map { ("$tcp/20m", '-o', "$dir/p$_") } 1 .. 4));
    is(file_sha256("$dir/p$_"), $sha{'20m'}, "parallel download $_: sha256")
        for 1 .. 4;
    unlink map { "$dir/p$_" } 1 .. 4;

    ($rc, $out) = curl('-H', 'Expect:', '--data-binary', "\@$data/8m",
        'http://127.0.0.1:' . $ng->port('tcpup') . '/up');
    like($out, qr/^length=@{[8 << 20]} sha256=$sha{'8m'} /,
        'upload through TCP proxy arrived byte-exact');

    my $c = raw_connect($ng->port('ret'));
    local $/;
    my $got = <$c>;
    is($got, "hello 127.0.0.1\n", 'stream return');
    $ng->stop;
});

rp_case('stream-udp', sub {
    my ($mode, $dir) = @_;
    my $echo = udp_echo();
    my $ng = nginx_start($mode, $dir, stream => <<"EOF3");
    server {
        listen 127.0.0.1:%%UDP_udp%% udp;
        proxy_pass 127.0.0.1:$echo;
        proxy_timeout 1s;
    }
    server {
        listen 127.0.0.1:%%UDP_uret%% udp;
        return "pong \$remote_port\\n";
    }
    server {
        listen 127.0.0.1:%%PORT_tcp%%;
        return "up\\n";
    }
EOF3
    # ten clients (ten sessions), 50 datagrams each, sizes up to 8000 bytes
    my $good = 0;
    for my $client (1 .. 10) {
        my @p = map {
            my $d = pack('NN', $client, $_) . ('x' x (($_ * 163 + $client) % 8000));
            [$d, $d];
        } 1 .. 50;
        $good += udp_exchange($ng->udp('udp'), @p);
    }
    is($good, 500, 'UDP proxy: 500 datagrams echoed intact, in order');

    # ten clients on the UDP return server
    my $pong = 0;
    for (1 .. 10) {
        my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $ng->udp('uret'), Proto => 'udp') or die;
        my $want = 'pong ' . $c->sockport . "\n";
        $pong += udp_exchange_sock($c, $want);
    }
    is($pong, 10, 'UDP return: 10 answers naming the client port');
    $ng->stop;
});

sub udp_exchange_sock {
    my ($c, $want) = @_;
    send($c, "ping", 0) or return 0;
    IO::Select->new($c)->can_read(5) or return 0;
    defined recv($c, my $got, 65536, 0) or return 0;
    close $c;
    return $got eq $want ? 1 : 0;
}

done_testing;
