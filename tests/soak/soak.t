#!/usr/bin/perl
# make soak (issue #13): mixed traffic against Debian's nginx with 2 workers
# in each mode while the master is reloaded every 3 s, the binary upgraded
# once (USR2, WINCH, QUIT) and a worker killed once; then an evhttp server
# on our libevent (completion bufferevents) under connection churn.
#
# Traffic, all at once, for every phase: wrk with a new connection per
# request; pipelined keep-alive requests (10 per write, answers checked);
# clients leaving mid-download; uploads through a proxy (the upstream's
# sha256 checked); HTTP/2 requests with curl.  Phases of $SOAK_PHASE
# seconds (default 40): reloads; the binary upgrade; the worker kill.
# What must hold: no request fails in the first two phases; in the third
# at most as many as the connections open when the worker died; no fd or
# memory growth of master and workers across the run.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../nginx/lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

my $PHASE = $ENV{SOAK_PHASE} || 40;
my $data = "$BUILD/data/soak";
make_path($data);
make_file("$data/1k", 1024) unless (-s "$data/1k" // 0) == 1024;
make_file("$data/2m", 2 << 20) unless (-s "$data/2m" // 0) == 2 << 20;
make_file("$data/1m", 1 << 20) unless (-s "$data/1m" // 0) == 1 << 20;
my $sha1m = file_sha256("$data/1m");

sub proc_fds { my @f = glob "/proc/$_[0]/fd/*"; return scalar @f }
sub proc_rss_kb {
    my ($kb) = RPNginx::slurp("/proc/$_[0]/status") =~ /^VmRSS:\s+(\d+)/m;
    return $kb // 0;
}
sub master_of { my ($dir) = @_; my $p = RPNginx::slurp("$dir/nginx.pid"); $p =~ s/\s+//g; return $p }

# a Perl load loop in a child: counts ok/failed into $out at exit
sub loop_child {
    my ($out, $secs, $code) = @_;
    return perl_child(sub {
        my ($ok, $bad, $retried, @why) = (0, 0, 0);
        my $end = time + $secs;
        while (time < $end) {
            my $r = eval { $code->() };
            if ($r) { $ok++; $retried++ if $r == 2 }
            else { $bad++; push @why, $@ || 'failed' if @why < 5 }
        }
        open my $fh, '>', $out or die;
        print $fh "ok=$ok bad=$bad retried=$retried\n", map { "why: $_\n" } @why;
        close $fh;
    });
}

# Ten pipelined requests.  An old worker leaving after a reload answers the
# request it is on and closes (nginx drops keep-alive when exiting, on
# epoll too): at a response boundary that is HTTP/1.1's persistent-
# connection close, and the client sends the rest again on a new
# connection, as clients do (RFC 9112, 9.3.1).  A response cut short or
# wrong is a failure.  Returns 2 when a retry was needed.
sub pipelined {
    my ($port) = @_;
    my ($done, $tries) = (0, 0);
    while ($done < 10) {
        die "10 requests not answered in 3 connections\n" if ++$tries > 3;
        my $c = raw_connect($port);
        my $req = join '', map { "GET /1k?$_ HTTP/1.1\r\nHost: x\r\n"
            . ($_ == 10 ? "Connection: close\r\n" : '') . "\r\n" } $done + 1 .. 10;
        print $c $req;
        my $buf = '';
        while ($done < 10) {
            my $r = read_response($c, \$buf, 10);
            if (!$r) {
                die "response @{[$done + 1]} cut short\n" if length $buf;
                last;                               # closed at a boundary
            }
            die "status $r->{status}\n" if $r->{status} != 200;
            die "body " . length($r->{body}) . "\n" if length $r->{body} != 1024;
            $done++;
        }
        close $c;
    }
    return $tries > 1 ? 2 : 1;
}

sub aborted {
    my ($port) = @_;
    my $c = raw_connect($port);
    print $c "GET /2m HTTP/1.1\r\nHost: x\r\n\r\n";
    my $got = 0;
    while ($got < 16384) {
        my $r = sysread($c, my $b, 16384) or last;
        $got += $r;
    }
    close $c;
    die "no bytes\n" unless $got;
    return 1;
}

sub wrk_start {
    my ($dir, $port, $secs, $tag) = @_;
    return spawn_cmd($secs + 30, "$dir/wrk-$tag.out", 'wrk', '-t1', '-c16',
        "-d${secs}s", '-H', 'Connection: close', "http://127.0.0.1:$port/1k");
}

sub wrk_errors {
    my ($file) = @_;
    my $o = RPNginx::slurp($file);
    my ($n) = $o =~ /(\d+) requests in/;
    my $err = 0;
    $err += $_ for $o =~ /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/;
    my ($non2xx) = $o =~ /Non-2xx or 3xx responses: (\d+)/;
    return ($n // 0, $err + ($non2xx // 0), $o);
}

sub snapshot {
    my ($master) = @_;
    my @w = RPNginx::children_of($master);
    my %s = (master_fds => proc_fds($master), master_rss => proc_rss_kb($master));
    for (@w) {
        $s{worker_fds} = proc_fds($_) if proc_fds($_) > ($s{worker_fds} // 0);
        $s{worker_rss} = proc_rss_kb($_) if proc_rss_kb($_) > ($s{worker_rss} // 0);
    }
    return \%s;
}

sub wait_gone {
    my ($pid, $secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        return 1 if !-e "/proc/$pid" || RPNginx::slurp("/proc/$pid/stat") =~ /\)\s+Z/;
        waitpid($pid, WNOHANG);
        sleep 0.05;
    }
    return 0;
}

rp_case('soak-nginx', sub {
    my ($mode, $dir) = @_;
    my ($up) = hash_upstream();
    my $ng = nginx_start($mode, $dir, workers => 2, daemon => 1, http => <<"EOF2");
    access_log off;
    client_max_body_size 16m;
    upstream up {
        server 127.0.0.1:$up;
    }
    server {
        listen 127.0.0.1:%%PORT_http%%;
        listen 127.0.0.1:%%PORT_h2%% http2;
        root $data;
        location /up {
            proxy_pass http://up;
        }
    }
EOF2
    my $port = $ng->port('http');
    my $h2 = 'http://127.0.0.1:' . $ng->port('h2') . '/1k';
    my $first_master = $ng->pid;
    my $master = $first_master;
    my ($before, $mid, $total, $killed_conns) = (undef, undef, 0, 0);

    for my $phase (qw(warmup reloads upgrade kill)) {
        my $secs = $phase eq 'warmup' ? 5 : $PHASE;
        my @kids;
        push @kids, [wrk => wrk_start($dir, $port, $secs, $phase)];
        for my $kind (qw(pipelined aborted upload h2)) {
            my $out = "$dir/$phase-$kind.out";
            my $code = {
                pipelined => sub { pipelined($port) },
                aborted => sub { aborted($port) },
                upload => sub {
                    my ($rc, $o) = run_cmd(30, 'curl', '-sS', '--data-binary',
                        "\@$data/1m", "http://127.0.0.1:$port/up");
                    die "upload: $o\n" unless $o =~ /^length=1048576 sha256=$sha1m /;
                    1;
                },
                h2 => sub {
                    my ($rc, $o) = run_cmd(30, 'curl', '-sS',
                        '--http2-prior-knowledge', '-o', '/dev/null', '-w',
                        '%{http_code} %{size_download}', $h2);
                    die "h2: $o\n" unless $o eq '200 1024';
                    1;
                },
            }->{$kind};
            push @kids, [$kind => loop_child($out, $secs, $code), $out];
        }
        my $t0 = time;
        if ($phase eq 'reloads') {
            while (time < $t0 + $secs - 3) {
                sleep 3;
                kill 'HUP', $master;
            }
        } elsif ($phase eq 'upgrade') {
            sleep $secs / 3;
            kill 'USR2', $master;
            wait_until(10, sub { -e "$dir/nginx.pid.oldbin"
                && master_of($dir) =~ /^\d+$/ && master_of($dir) != $master })
                or fail('USR2: no new master');
            my $new = master_of($dir);
            wait_until(10, sub { RPNginx::children_of($new) >= 2 })
                or fail('USR2: the new master has no workers');
            kill 'WINCH', $master;
            sleep 2;
            kill 'QUIT', $master;
            ok(wait_gone($master, 20), 'the old master exited on QUIT');
            $master = $new;
            $ng->{pid} = $new;
            pass("binary upgraded: master $first_master -> $new");
        } elsif ($phase eq 'kill') {
            sleep $secs / 2;
            my ($w) = RPNginx::children_of($master);
            # an upper bound: every established loopback TCP socket
            $killed_conns = grep { my @f = split ' '; ($f[3] // '') eq '01' }
                split /\n/, RPNginx::slurp('/proc/net/tcp');
            kill 'KILL', $w;
            pass("worker $w killed");
        }
        my %res;
        for my $k (@kids) {
            my ($kind, $pid, $out) = @$k;
            if ($kind eq 'wrk') {
                wait_cmd($pid);
                my ($n, $err, $o) = wrk_errors("$dir/wrk-$phase.out");
                $res{wrk} = [$n, $err, $o];
            } else {
                waitpid $pid, 0;
                my $r = RPNginx::slurp($out);
                my ($ok, $bad, $re) = $r =~ /ok=(\d+) bad=(\d+) retried=(\d+)/;
                $res{$kind} = [$ok // 0, $bad // 1, $r, $re];
            }
        }
        my $bad = 0;
        for my $kind (sort keys %res) {
            my ($n, $err, $o, $re) = @{ $res{$kind} };
            $total += $n;
            $bad += $err;
            diag("$mode $phase $kind: $n ok, $err failed"
                . ($re ? ", $re sent again after a close at a response boundary" : ''))
                if $phase ne 'warmup';
            diag($o) if $err && $phase ne 'kill';
            ok($n > 0, "$phase $kind: requests were served");
        }
        if ($phase eq 'kill') {
            ok($bad <= $killed_conns + 4, "$phase: $bad failed, at most the "
                . "$killed_conns connections open when the worker died");
        } else {
            is($bad, 0, "$phase: no request failed");
        }
        sleep 2;
        $before = snapshot($master) if $phase eq 'warmup';
        # the upgraded master is another process: its own baseline
        $mid = snapshot($master) if $phase eq 'upgrade';
    }
    sleep 3;
    my $after = snapshot($master);
    my $fmt = sub { my $h = shift; join ' ', map { "$_=$h->{$_}" } sort keys %$h };
    diag("$mode: $total requests; after warmup: " . $fmt->($before)
        . "; after the upgrade: " . $fmt->($mid) . "; at the end: " . $fmt->($after));
    ok($after->{master_fds} <= $before->{master_fds}, 'master: no fd growth');
    ok($after->{worker_fds} <= $before->{worker_fds} + 2, 'workers: no fd growth');
    ok($after->{master_rss} <= $mid->{master_rss} + 1024,
        'master: RSS grew by < 1 MiB since the upgrade');
    ok($after->{worker_rss} <= $before->{worker_rss} + 8192,
        'workers: RSS grew by < 8 MiB');

    # the killed worker's alert is the one expected; nothing else
    my $log = RPNginx::slurp($ng->log_file);
    $log =~ s/\Q$dir\E/<dir>/g;
    my @bad = grep { /\[(alert|crit|emerg)\]|exited on signal/ && !/exited on signal 9/ }
        split /\n/, $log;
    is(scalar @bad, 0, 'error log: no alert/crit/emerg but the kill') or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
    if (mode_info($mode)->{ring}) {
        my @warn = grep { /\[warn\].*io_uring/ } split /\n/, $log;
        is(scalar @warn, 0, 'no io_uring fallback warning');
    }
    kill 'QUIT', $master;
    ok(wait_gone($master, 20), 'nginx exited on QUIT');
    kill 'KILL', $master, RPNginx::children_of($master);
}, timeout => 4 * $PHASE + 180);

# evhttp on our libevent (completion bufferevents by default; epoll with
# EVENT_NOIO_URING=1) under connection churn: wrk with a new connection
# per request in rounds; no error, and no fd or memory growth after the
# first round.
my $le = "$TOP/build/bench/bin/le_http";
for my $backend (qw(io_uring epoll)) {
    subtest "soak-libevent [$backend]" => sub {
        plan skip_all => "no $le (make bench-bin after make libevent)" unless -x $le;
        local $ENV{EVENT_NOIO_URING} = $backend eq 'epoll' ? 1 : undef;
        delete $ENV{EVENT_NOIO_URING} if $backend ne 'epoll';
        my $pid = open(my $fh, '-|', $le, '0') or die "$le: $!";
        my $line = <$fh> // '';
        my ($port, $method) = $line =~ /port=(\d+) method=(\S+)/;
        ok($port, "le_http listening ($line)") or return;
        is($method, $backend, "backend $backend");
        my ($fds0, $rss0, $total);
        my $rounds = 4;
        for my $round (1 .. $rounds) {
            my $out = "$BUILD/le-wrk.out";
            my $w = spawn_cmd($PHASE + 30, $out, 'wrk', '-t1', '-c64',
                '-d' . int($PHASE / 2) . 's', '-H', 'Connection: close',
                "http://127.0.0.1:$port/");
            wait_cmd($w);
            my ($n, $err, $o) = wrk_errors($out);
            $total += $n;
            ok($n > 0 && $err == 0, "round $round: $n requests, $err errors")
                or diag($o);
            sleep 1;
            my ($fds, $rss) = (proc_fds($pid), proc_rss_kb($pid));
            diag("libevent $backend round $round: $n requests, fds $fds, VmRSS $rss kB");
            ($fds0, $rss0) = ($fds, $rss) if $round == 1;
            if ($round == $rounds) {
                ok($fds <= $fds0, "no fd growth ($fds0 -> $fds)");
                ok($rss <= $rss0 + 4096, "RSS grew by < 4 MiB ($rss0 -> $rss kB)");
            }
        }
        kill 'TERM', $pid;
        close $fh;
        diag("libevent $backend: $total requests");
    };
}

done_testing;
