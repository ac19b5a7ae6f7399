#!/usr/bin/perl
# proxy_pass to an upstream (a second server block of the same nginx) with
# keepalive: every answer right, and the upstream sees few connections.
# When the upstream closes its idle kept-alive connections, nginx notices
# (the keepalive close handler) and never sends a request into a dead one;
# a refused connect gives 502.
# An upstream that writes stray bytes on a kept-alive connection (while
# nginx holds it idle, or in the same write as a HEAD answer's header, an
# auth_request subrequest's header or a body) gets that connection closed,
# as epoll's MSG_PEEK in the keepalive close handler (or nginx's own
# Content-Length check) closes it: no request goes on it again, and the
# next request gets its own answer, byte for byte.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

my $data = "$BUILD/data/upstream";
make_path($data);
make_file("$data/big", 3 << 20) unless (-s "$data/big" // 0) == 3 << 20;
my $big_sha = file_sha256("$data/big");

rp_case('upstream-keepalive', sub {
    my ($mode, $dir) = @_;
    my $dead = RPNginx::free_port('tcp');
    my $ng = nginx_start($mode, $dir, http => <<"EOF2");
    log_format conn '\$connection \$connection_requests \$request_uri \$status';
    upstream back {
        server 127.0.0.1:%%PORT_back%%;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:%%PORT_http%%;
        location / {
            proxy_pass http://back;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /dead {
            proxy_pass http://127.0.0.1:$dead;
        }
    }
    server {
        listen 127.0.0.1:%%PORT_back%%;
        access_log %%DIR%%/back.log conn;
        keepalive_requests 10000;
        keepalive_timeout 1s;
        location /k/ {
            return 200 "back \$request_uri\\n";
        }
        location /big {
            root $data;
        }
    }
EOF2
    my $port = $ng->port('http');

    # 300 requests in sequence on one client connection
    my $c = raw_connect($port);
    my $buf = '';
    my $good = 0;
    for my $i (1 .. 300) {
        print $c "GET /k/$i HTTP/1.1\r\nHost: t\r\n\r\n";
        my $r = read_response($c, \$buf, 20);
        last unless $r && $r->{status} == 200 && $r->{body} eq "back /k/$i\n";
        $good++;
    }
    is($good, 300, '300 sequential proxied requests answered right');
    # a large body through the kept-alive upstream connection, twice
    for (1 .. 2) {
        print $c "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";
        my $r = read_response($c, \$buf, 30);
        is($r ? data_sha256($r->{body}) : '', $big_sha, "3 MiB via proxy: sha256");
    }
    close $c;
    ok(wait_until(5, sub { (() = RPNginx::slurp("$dir/back.log") =~ /\n/g) >= 302 }),
        'upstream logged every request');
    my %conns = map { (split ' ')[0] => 1 } split /\n/, RPNginx::slurp("$dir/back.log");
    # 1 when nothing stalls; a pause over the upstream's 1 s keepalive
    # timeout on a loaded machine costs one more
    cmp_ok(scalar keys %conns, '<=', 5,
        'sequential: upstream saw at most 5 connections for 302 requests')
        or diag(scalar(keys %conns) . ' connections');

    # 400 requests over up to 8 client connections at once
    open my $cf, '>', "$dir/urls" or die;
    print $cf "url = \"http://127.0.0.1:$port/k/p$_\"\noutput = \"/dev/null\"\n"
        for 1 .. 400;
    close $cf;
    my ($rc, $out) = curl('--parallel', '--parallel-max', '8', '-K', "$dir/urls",
        '-w', '%{http_code}\n');
    is(scalar(() = $out =~ /^200$/mg), 400, 'parallel: 400 answers, all 200')
        or diag($out);
    ok(wait_until(5, sub { (() = RPNginx::slurp("$dir/back.log") =~ /\n/g) >= 702 }),
        'upstream logged every request');
    my @lines = split /\n/, RPNginx::slurp("$dir/back.log");
    %conns = map { (split ' ')[0] => 1 } @lines[302 .. $#lines];
    cmp_ok(scalar keys %conns, '<=', 40,
        'parallel: upstream connections reused (<= 40 for 400 requests)')
        or diag(scalar(keys %conns) . ' connections');
    my $reused = grep { (split ' ')[1] > 1 } @lines;
    cmp_ok($reused, '>=', 650, 'most upstream requests on a reused connection');

    # the upstream drops its idle connections after 1 s; nginx must have
    # closed its cached ends by then, so nothing goes into a dead one
    # (that would log "upstream prematurely closed connection")
    sleep 2.5;
    $c = raw_connect($port);
    $buf = '';
    $good = 0;
    for my $i (1 .. 50) {
        print $c "GET /k/after$i HTTP/1.1\r\nHost: t\r\n\r\n";
        my $r = read_response($c, \$buf, 20);
        last unless $r && $r->{status} == 200 && $r->{body} eq "back /k/after$i\n";
        $good++;
    }
    is($good, 50, 'after the upstream closed its idle connections: 50 answered');
    close $c;

    my $r = raw_request($port, "GET /dead HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 10);
    is($r && $r->{status}, 502, 'refused upstream connect: 502');
    $ng->stop(errors => qr/connect\(\) failed \(111: Connection refused\)/);
});

# A complete response, so that a connection nginx wrongly reuses hands its
# next request this body instead of the right one.
my $STRAY = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTRAY\n";

# A response of exactly $size bytes with $body (padded in a header), so
# that nginx's first read (proxy_buffer_size 4k) ends where it ends.
sub exact_response {
    my ($body, $size) = @_;
    my $head = "HTTP/1.1 200 OK\r\nContent-Length: " . length($body) . "\r\n";
    my $pad = $size - length($head) - length("X-Pad: \r\n\r\n") - length $body;
    return $head . 'X-Pad: ' . ('p' x $pad) . "\r\n\r\n" . $body;
}

sub stray_body { return "ok $_[0]\n" }

# An HTTP/1.1 keep-alive upstream in a child process, any number of
# connections at once.  Each connection gets a number; $log records
# "N req URI", "N stray" (before the stray bytes are written) and
# "N closed" (EOF or reset from nginx), in order.  Every URI is answered
# with stray_body(URI), and:
#   .../idle/N     0.2 s after the answer, $STRAY on the same connection,
#                  while nginx holds it idle in its keepalive cache;
#   .../with/N     the answer is exactly 4096 bytes and $STRAY follows it
#                  in the same write;
#   .../head/N     the same, although the request is HEAD (a body nginx
#                  does not read after the header);
#   /auth          the same, header only (the auth_request subrequest).
sub stray_upstream {
    my ($log) = @_;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Listen => 128, ReuseAddr => 1) or die "upstream listen: $!";
    my $port = $l->sockport;
    perl_child(sub {
        $SIG{PIPE} = 'IGNORE';
        open my $lf, '>>', $log or die "open $log: $!";
        $lf->autoflush(1);
        my $sel = IO::Select->new($l);
        my (%id, %buf, @later);
        my $n = 0;
        while (1) {
            my $wait;
            if (@later) {
                $wait = $later[0][0] - time;
                $wait = 0 if $wait < 0;
            }
            for my $s ($sel->can_read($wait)) {
                if ($s == $l) {
                    my $c = $l->accept or next;
                    binmode $c;
                    $id{$c} = ++$n;
                    $buf{$c} = '';
                    $sel->add($c);
                    next;
                }
                if (!sysread($s, $buf{$s}, 65536, length $buf{$s})) {
                    print $lf "$id{$s} closed\n";
                    $sel->remove($s);
                    delete $id{$s};
                    delete $buf{$s};
                    close $s;
                    next;
                }
                while ((my $e = index($buf{$s}, "\r\n\r\n")) >= 0) {
                    my $head = substr($buf{$s}, 0, $e + 4, '');
                    my ($uri) = $head =~ m{^(?:GET|HEAD) (\S+)} or next;
                    print $lf "$id{$s} req $uri\n";
                    my $body = stray_body($uri);
                    if ($uri =~ m{/(with|head)/\d+$} || $uri eq '/auth') {
                        print $lf "$id{$s} stray\n";
                        syswrite($s, exact_response($uri eq '/auth' ? ''
                            : $body, 4096) . $STRAY);
                        next;
                    }
                    syswrite($s, "HTTP/1.1 200 OK\r\nContent-Length: "
                        . length($body) . "\r\n\r\n$body");
                    push @later, [time + 0.2, $s] if $uri =~ m{/idle/\d+$};
                }
            }
            while (@later && $later[0][0] <= time) {
                my $s = (shift @later)->[1];
                next unless defined fileno($s) && $id{$s};
                print $lf "$id{$s} stray\n";
                syswrite($s, $STRAY);
            }
        }
    });
    close $l;
    return $port;
}

# Start nginx in front of stray_upstream() and run $step twice on one
# client connection, each time between requests that must get their own
# answers; $step gets the helpers below and returns the upstream connection
# that got stray bytes, which nginx must then close.  At the end no request
# may have reached the upstream on a connection after its stray bytes, and
# in completion mode the $io_uring_stats counters in $o{want} must have
# moved.  $o{nginx}: more nginx_start() options.
sub stray_case {
    my ($name, $step, %o) = @_;
    my %want = %{ $o{want} || {} };
    rp_case($name, sub {
        my ($mode, $dir) = @_;
        my $log = "$dir/stray.log";
        my $up = stray_upstream($log);
        my $stats = mode_info($mode)->{so}
            ? "location = /stats { return 200 \"\$io_uring_stats\\n\"; }" : '';
        my $ng = nginx_start($mode, $dir, %{ $o{nginx} || {} },
            http => <<"EOF2");
    upstream stray {
        server 127.0.0.1:$up;
        keepalive 4;
    }
    server {
        listen 127.0.0.1:%%PORT_http%%;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffer_size 4k;
        location / {
            proxy_pass http://stray;
        }
        location /auth/ {
            auth_request /check;
            proxy_pass http://stray;
        }
        location = /check {
            internal;
            proxy_pass http://stray/auth;
            proxy_pass_request_body off;
            proxy_set_header Connection "";
            proxy_set_header Content-Length "";
        }
        $stats
    }
EOF2
        my $port = $ng->port('http');
        my %t;
        $t{events} = sub { map { [split ' '] } split /\n/, RPNginx::slurp($log) };
        $t{conn_of} = sub {     # the upstream connection that got $uri last
            my ($uri) = @_;
            my @l = grep { $_->[1] eq 'req' && $_->[2] eq $uri } $t{events}->();
            return @l ? $l[-1][0] : -1;
        };
        $t{seen} = sub {
            my ($n, $what) = @_;
            return grep { $_->[0] == $n && $_->[1] eq $what } $t{events}->();
        };
        my $c = raw_connect($port);
        my $buf = '';
        $t{get} = sub {
            my ($uri) = @_;
            print $c "GET $uri HTTP/1.1\r\nHost: t\r\n\r\n";
            my $r = read_response($c, \$buf, 10);
            return $r ? "$r->{status} $r->{body}" : 'no response';
        };
        $t{head} = sub {        # a HEAD answer has no body to wait for
            my ($uri) = @_;
            print $c "HEAD $uri HTTP/1.1\r\nHost: t\r\n\r\n";
            my $deadline = time + 10;
            while (index($buf, "\r\n\r\n") < 0 && time < $deadline) {
                my $sel = IO::Select->new($c);
                next unless $sel->can_read($deadline - time);
                sysread($c, $buf, 65536, length $buf) or last;
            }
            my $e = index($buf, "\r\n\r\n");
            return 'no response' if $e < 0;
            my $h = substr($buf, 0, $e + 4, '');
            return $h =~ m{^HTTP/1\.1 (\d+)} ? $1 : 'bad response';
        };

        for my $i (1 .. 2) {
            for my $uri ("/ok/$i", "/ok/$i.b") {
                is($t{get}->($uri), '200 ' . stray_body($uri), "round $i: $uri");
            }
            is($t{conn_of}->("/ok/$i.b"), $t{conn_of}->("/ok/$i"),
                "round $i: a clean kept-alive connection is reused");
            my $n = $step->(\%t, $i);
            ok(wait_until(5, sub { $t{seen}->($n, 'closed') }),
                "round $i: nginx closed connection $n after its stray bytes");
            is($t{get}->("/ok/$i.c"), '200 ' . stray_body("/ok/$i.c"),
                "round $i: /ok/$i.c answered right");
        }
        close $c;

        my (%stray, @late);
        for ($t{events}->()) {
            $stray{ $_->[0] } = 1 if $_->[1] eq 'stray';
            push @late, "$_->[0] $_->[2]" if $_->[1] eq 'req' && $stray{ $_->[0] };
        }
        is("@late", '', 'no request sent on a connection after its stray bytes')
            or diag(RPNginx::slurp($log));

        if ($mode =~ /completion/ && %want) {
            my $r = raw_request($port, "GET /stats HTTP/1.1\r\nHost: t\r\n"
                . "Connection: close\r\n\r\n", 10);
            my %st;
            if ($r) { $st{$1} = $2 while $r->{body} =~ /(\w+)=(\d+)/g }
            for my $k (sort keys %want) {
                cmp_ok($st{$k} // 0, '>=', $want{$k}, "\$io_uring_stats: $k")
                    or diag($r && $r->{body});
            }
        }
        $ng->stop;
    });
}

# bytes arrive while nginx holds the connection idle in its cache
stray_case('upstream-stray-idle', sub {
    my ($t, $i) = @_;
    is($t->{get}->("/idle/$i"), '200 ' . stray_body("/idle/$i"), "round $i: /idle/$i");
    my $n = $t->{conn_of}->("/idle/$i");
    ok(wait_until(5, sub { $t->{seen}->($n, 'stray') }),
        "round $i: upstream wrote stray bytes on idle connection $n");
    return $n;
}, want => { idle_closes => 2 });

# in the same write as a HEAD answer's header: nginx reads no further, the
# bytes are left for the keepalive close handler
my $head_step = sub {
    my ($t, $i) = @_;
    is($t->{head}->("/head/$i"), '200', "round $i: HEAD /head/$i");
    my $n = $t->{conn_of}->("/head/$i");
    is($n, $t->{conn_of}->("/ok/$i.b"), "round $i: /head/$i on a reused connection");
    return $n;
};
stray_case('upstream-stray-head', $head_step, want => { idle_closes => 2 });

# the same where handlers run from posted events: the worker that holds the
# accept mutex posts them (the counters are per worker: not checked)
stray_case('upstream-stray-head-posted', $head_step,
    nginx => { workers => 2, events => 'accept_mutex on;' });

# after a body: nginx reads on, finds them itself and warns
stray_case('upstream-stray-body', sub {
    my ($t, $i) = @_;
    is($t->{get}->("/with/$i"), '200 ' . stray_body("/with/$i"), "round $i: /with/$i");
    my $n = $t->{conn_of}->("/with/$i");
    is($n, $t->{conn_of}->("/ok/$i.b"), "round $i: /with/$i on a reused connection");
    return $n;
});

# with an auth_request subrequest's header: the subrequest leaves the
# connection in the cache and the main request takes it in the same handler
stray_case('upstream-stray-subrequest', sub {
    my ($t, $i) = @_;
    is($t->{get}->("/auth/$i"), '200 ' . stray_body("/auth/$i"), "round $i: /auth/$i");
    my $n = $t->{conn_of}->('/auth');
    is($n, $t->{conn_of}->("/ok/$i.b"), "round $i: subrequest on a reused connection");
    isnt($t->{conn_of}->("/auth/$i"), $n,
        "round $i: main request not on the subrequest's connection $n");
    return $n;
}, want => { stale_reuses => 2 });

done_testing;
