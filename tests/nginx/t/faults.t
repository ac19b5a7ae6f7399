#!/usr/bin/perl
# Allocation failures in a worker (issue #13): the module and its engine
# built with -DRP_FAULT_INJECTION (make module-faults); `env
# RP_FAIL_ALLOC=n;` fails the worker's n-th allocation, counted from its
# init.  A request mix (keep-alive GETs, a 1 MiB file, a 200 KB upload
# through a proxy, HTTP/2) runs once to count the allocations it reaches,
# then once per n with that one failed.  Each time: no worker dies, a
# response that comes is byte-exact (a failure shows as an error, never as
# wrong bytes), and once the single fault is spent every request of the
# mix succeeds on the same nginx (a failed ring setup: epoll, with the
# module's one warning).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;
use File::Path qw(make_path);

# RP_NGINX_FAULT_MODULE: the same build for another nginx (make test-nginx126)
my $so = $ENV{RP_NGINX_FAULT_MODULE}
    || "$TOP/build/module-faults/ngx_event_io_uring_module.so";
my $data = "$BUILD/data/faults";
make_path($data);
make_file("$data/1m", 1 << 20) unless (-s "$data/1m" // 0) == 1 << 20;
make_file("$data/up", 200000) unless (-s "$data/up" // 0) == 200000;
my $file1m = RPNginx::slurp("$data/1m");
my $shaup = file_sha256("$data/up");

# the mix: 1 if every request came back right; dies on wrong bytes
my @why;
sub mix {
    my ($ng, $dir, $up) = @_;
    my $base = 'http://127.0.0.1:' . $ng->port('http');
    my $all = 1;
    # a response cut short (the connection closed on an error: curl exit
    # 18) is an error the client sees; its bytes must still be the file's
    unlink "$dir/out";
    my ($rc1, $o1) = curl('-o', "$dir/out", '-w', '%{http_code}', "$base/1m");
    my $got = RPNginx::slurp("$dir/out") // '';
    die "1m: " . length($got) . " bytes that are not the file's\n"
        if length $got && $got ne substr($file1m, 0, length $got);
    $all = 0, push @why, "1m: exit $rc1 $o1 " . length $got
        unless $rc1 == 0 && $o1 eq '200' && length $got == 1 << 20;
    # two requests on one connection: "ok 200ok 200"
    my ($rc, $out) = curl('-w', ' %{http_code}\n', "$base/up", "$base/up");
    my @got = $out =~ /^(.*) (\d{3})$/mg;
    while (my ($body, $st) = splice @got, 0, 2) {
        die "keep-alive: 200 with '$body'\n" if $st == 200 && $body ne 'ok';
    }
    $all = 0, push @why, "keep-alive: $out" unless $out eq "ok 200\nok 200\n";
    ($rc, $out) = curl('--data-binary', "\@$data/up", "$base/proxy");
    if ($out =~ /^length=(\d+) sha256=(\w+)/) {
        die "upload: the upstream got other bytes\n" if $1 != 200000 || $2 ne $shaup;
    } else {
        $all = 0;
        push @why, "upload: $out";
    }
    ($rc, $out) = curl('--http2-prior-knowledge', '-o', '/dev/null', '-w',
        '%{http_code} %{size_download}', 'http://127.0.0.1:' . $ng->port('h2') . '/1m');
    if ($out =~ /^200 (\d+)/ && $1 == 1 << 20) { } else { $all = 0; push @why, "h2: $out" }
    return $all;
}

sub start {
    my ($mode, $dir, $n, $up) = @_;
    return nginx_start($mode, $dir, main => "env RP_FAIL_ALLOC=$n;",
        http => <<"EOF2");
    client_max_body_size 8m;
    server {
        listen 127.0.0.1:%%PORT_http%%;
        listen 127.0.0.1:%%PORT_h2%% http2;
        root $data;
        location = /up { return 200 "ok"; }
        location = /proxy { proxy_pass http://127.0.0.1:$up; }
    }
EOF2
}

sub stop_checked {
    my ($ng) = @_;
    my $pid = $ng->pid;
    kill 'QUIT', $pid;
    wait_until(20, sub { waitpid($pid, POSIX::WNOHANG()) == $pid });
    my $log = RPNginx::slurp($ng->log_file);
    return $log;
}

rp_case('alloc-failure-each-in-turn', sub {
    my ($mode, $dir) = @_;
    rp_skip('epoll: no engine, nothing to fail') unless mode_info($mode)->{ring};
    rp_skip("no $so (make module-faults)") unless -f $so;
    local $RPNginx::MODES{$mode}{so} = $so;
    my ($up) = hash_upstream();

    my $ng = start($mode, $dir, 0, $up);
    ok(mix($ng, $dir, $up), 'without a fault every request succeeds');
    my $log = stop_checked($ng);
    my ($count) = $log =~ /io_uring fault injection: (\d+) allocations/;
    ok($count && $count > 3, "the mix reaches @{[$count // 0]} allocations")
        or return;
    my (@died, @unhealed, @init);
    for my $n (1 .. $count) {
        my $ng = eval { start($mode, $dir, $n, $up) };
        if (!$ng) {
            # a failure in the worker's init (adding a listener, the
            # channel): nginx's own rule, as with epoll_ctl() failing
            # there, is one line naming it and a worker that exits with
            # code 2, not respawned
            my $why = $@;
            $log = RPNginx::slurp("$dir/error.log");
            my ($line) = $log =~ /\[(?:alert|emerg)\] \d+#\d+: (.*failed.*)/;
            if ($line && $log =~ /exited with fatal code 2/
                && $log !~ /exited on signal/)
            {
                push @init, "n=$n: $line";
            } else {
                push @died, "n=$n: $why";
            }
            RPNginx::kill_all();         # the master left, and the upstream
            ($up) = hash_upstream();
            next;
        }
        my $first = eval { mix($ng, $dir, $up) };
        my $err = $@;
        @why = ();
        # the fault is spent: now everything must work
        my $again = eval { mix($ng, $dir, $up) } && eval { mix($ng, $dir, $up) };
        my $err2 = $@;
        $log = stop_checked($ng);
        push @died, "n=$n: " . ($err || $err2) if $err || $err2;
        push @died, "n=$n: a worker died" if $log =~ /exited on signal/;
        push @unhealed, "n=$n (@why)" unless $again;
        @why = ();
    }
    is("@died", '', "each of the $count allocations failed in turn: no worker "
        . 'died, no wrong byte');
    is("@unhealed", '', 'and after each failure the same nginx serves the '
        . 'whole mix again');
    diag(scalar(@init) . " of $count failed in the worker's init, each with "
        . "one line and exit code 2, as nginx does: "
        . join('; ', @init[0 .. ($#init < 4 ? $#init : 4)])) if @init;
}, timeout => 600);

done_testing;
