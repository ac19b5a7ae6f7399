#!/usr/bin/perl
# HTTP/2 close paths (issue #12): nginx ends an HTTP/2 connection with a
# GOAWAY and then a lingering close (shutdown(SHUT_WR)) that does not wait
# for c->buffered.  In completion mode a response or GOAWAY still in the
# send queue was cut off by the FIN: a large response on the last allowed
# request lost its tail, keepalive_timeout 0 gave no response, an idle
# timeout or a graceful shutdown gave no GOAWAY.  Each case checks what the
# client gets, byte-exact, with a minimal HTTP/2 client written here.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use IO::Select;
use Time::HiRes qw(time sleep);

my $data = "$BUILD/data/h2close";
make_path($data);
my $big = 400000;
make_file("$data/big", $big) unless (-s "$data/big" // 0) == $big;
my $big_sha = file_sha256("$data/big");
open my $fh, '>', "$data/small" or die "$data/small: $!";
print $fh "small\n";
close $fh;

# --- a minimal HTTP/2 client: frames in and out, HPACK only as needed ---

sub frame {
    my ($type, $flags, $sid, $payload) = @_;
    my $len = length $payload;
    return pack('CnCCN', $len >> 16, $len & 0xffff, $type, $flags, $sid)
        . $payload;
}

# GET $path on stream $sid: :method GET (static 2), :scheme http (6),
# :path and :authority as literals with indexed names (4, 1)
sub get_frame {
    my ($sid, $path) = @_;
    my $hb = "\x82\x86" . "\x04" . chr(length $path) . $path
        . "\x01" . chr(9) . 'localhost';
    return frame(1, 0x5, $sid, $hb);    # HEADERS, END_STREAM|END_HEADERS
}

sub h2_connect {
    my ($port) = @_;
    my $c = raw_connect($port);
    # a large connection and stream window: the test reads at its pace
    my $settings = pack('nN', 4, 0x7fffffff);    # INITIAL_WINDOW_SIZE
    syswrite($c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" . frame(4, 0, 0, $settings)
        . frame(8, 0, 0, pack('N', 0x7fffffff - 65535)));   # WINDOW_UPDATE
    return $c;
}

# frames until EOF or $limit seconds: [type, flags, sid, payload] each,
# and whether the peer closed
sub h2_read {
    my ($c, $limit, $until) = @_;
    my ($buf, @f, $eof) = ('');
    my $deadline = time + $limit;
    my $sel = IO::Select->new($c);
    while (1) {
        while (length $buf >= 9) {
            my ($l1, $l2, $type, $flags, $sid) = unpack('CnCCN', $buf);
            my $len = ($l1 << 16) | $l2;
            last if length $buf < 9 + $len;
            push @f, [$type, $flags, $sid & 0x7fffffff, substr($buf, 9, $len)];
            substr($buf, 0, 9 + $len) = '';
            if ($type == 4 && !($flags & 1)) {
                syswrite($c, frame(4, 1, 0, ''));    # SETTINGS ACK
            }
        }
        last if $until && $until->(\@f);
        my $left = $deadline - time;
        last if $left <= 0;
        next unless $sel->can_read($left);
        my $r = sysread($c, $buf, 262144, length $buf);
        if (!$r) { $eof = 1; last }
    }
    return (\@f, $eof);
}

sub data_of {
    my ($f, $sid) = @_;
    return join '', map { $_->[3] } grep { $_->[0] == 0 && $_->[2] == $sid } @$f;
}

sub goaway_of { return grep { $_->[0] == 7 } @{ $_[0] } }

sub start {
    my ($mode, $dir, $extra) = @_;
    return nginx_start($mode, $dir, http => <<"EOF2");
    server {
        listen 127.0.0.1:%%PORT_http%% http2;
        root $data;
        $extra
    }
EOF2
}

# keepalive_requests 1: the first response is the last; nginx queues it,
# then the GOAWAY, then shuts the socket down
rp_case('h2-last-request-large-body', sub {
    my ($mode, $dir) = @_;
    my $ng = start($mode, $dir, 'keepalive_requests 1;');
    my $c = h2_connect($ng->port('http'));
    syswrite($c, get_frame(1, '/big'));
    my ($f, $eof) = h2_read($c, 30);
    my $body = data_of($f, 1);
    is(length $body, $big, "all $big bytes of the last request's response");
    is(RPNginx::data_sha256($body), $big_sha, 'and byte-exact');
    ok(scalar goaway_of($f), 'a GOAWAY follows');
    ok($eof, 'then the connection closes');
    close $c;
    # curl sees the same
    my ($code, $sha, $size) = curl_fetch('http://127.0.0.1:' . $ng->port('http')
        . '/big', "$dir/out", '--http2-prior-knowledge');
    is("$code $size", "200 $big", 'curl: 200 and every byte');
    $ng->stop;
});

# keepalive_timeout 0: nginx answers and closes at once
rp_case('h2-keepalive-timeout-0', sub {
    my ($mode, $dir) = @_;
    my $ng = start($mode, $dir, 'keepalive_timeout 0;');
    for my $path ('/small', '/big') {
        my $c = h2_connect($ng->port('http'));
        syswrite($c, get_frame(1, $path));
        my ($f, $eof) = h2_read($c, 30);
        my $want = $path eq '/small' ? "small\n" : undef;
        my $body = data_of($f, 1);
        if (defined $want) {
            is($body, $want, "$path: the response arrives");
        } else {
            is(length $body, $big, "$path: all $big bytes arrive");
        }
        ok(scalar goaway_of($f), "$path: GOAWAY");
        ok($eof, "$path: connection closed");
        close $c;
    }
    $ng->stop;
});

# an idle connection's keepalive timeout: GOAWAY, then close
rp_case('h2-idle-timeout-goaway', sub {
    my ($mode, $dir) = @_;
    my $ng = start($mode, $dir, 'keepalive_timeout 1s;');
    my $c = h2_connect($ng->port('http'));
    syswrite($c, get_frame(1, '/small'));
    my ($f, $eof) = h2_read($c, 10, sub { data_of($_[0], 1) eq "small\n" });
    is(data_of($f, 1), "small\n", 'response before the idle time');
    my ($f2, $eof2) = h2_read($c, 10);
    my @g = goaway_of($f2);
    is(scalar @g, 1, 'a GOAWAY on the idle timeout');
    is(length($g[0][3]) >= 8 ? unpack('N', substr($g[0][3], 4, 4)) : -1, 0,
        'GOAWAY with NO_ERROR') if @g;
    ok($eof2, 'then the connection closes');
    close $c;
    $ng->stop;
});

# a graceful shutdown with an idle HTTP/2 connection open: GOAWAY
rp_case('h2-graceful-shutdown-goaway', sub {
    my ($mode, $dir) = @_;
    my $ng = start($mode, $dir, 'keepalive_timeout 60s;');
    my $c = h2_connect($ng->port('http'));
    syswrite($c, get_frame(1, '/small'));
    my ($f) = h2_read($c, 10, sub { data_of($_[0], 1) eq "small\n" });
    is(data_of($f, 1), "small\n", 'response');
    $ng->check_ring($ng->{tails0});
    kill 'QUIT', $ng->pid;
    my ($f2, $eof2) = h2_read($c, 15);
    ok(scalar goaway_of($f2), 'a GOAWAY on the graceful shutdown');
    ok($eof2, 'then the connection closes');
    close $c;
    $ng->stop(no_ring => 1);
});

done_testing;
