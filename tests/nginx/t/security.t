#!/usr/bin/perl
# The worker creates its ring as the configured user (issue #13): nginx's
# master (root) forks the workers, each drops to `user nobody nogroup` in
# ngx_worker_process_init(), and only then the event module's init creates
# the ring, so no request is served by a ring made with root's credentials
# (io_uring requests run with the credentials of the ring's creator unless
# given a personality).  strace -D -ff (the tracer detached, so nginx keeps
# its pid; one file per process) records every setuid, setgid and io_uring_setup: in each worker
# the setuid(nobody) comes before the io_uring_setup, and the master makes
# no ring.  epoll mode: no io_uring_setup at all.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use RPNginx;
use Test::More;

rp_case('ring-made-as-worker-user', sub {
    my ($mode, $dir) = @_;
    rp_skip('needs root to start nginx as root with user nobody') if $> != 0;
    my $uid = getpwnam('nobody') // rp_skip('no user nobody');
    my $wrap = "$dir/nginx-strace";
    open my $fh, '>', $wrap or die "$wrap: $!";
    print $fh "#!/bin/sh\nexec strace -D -ff -qq -o $dir/trace "
        . "-e trace=setuid,setgid,setgroups,setresuid,io_uring_setup "
        . "$RPNginx::NGINX \"\$@\"\n";
    close $fh;
    chmod 0755, $wrap;
    local $RPNginx::NGINX = $wrap;
    my $ng = nginx_start($mode, $dir, workers => 2, user => 'nobody nogroup',
        http => <<'EOF2');
    access_log off;
    server {
        listen 127.0.0.1:%%PORT_http%%;
        location / { return 200 "uid ok\n"; }
    }
EOF2
    my ($rc, $out) = curl('http://127.0.0.1:' . $ng->port('http') . '/');
    is($out, "uid ok\n", 'a request served by a worker running as nobody');
    my @w = $ng->workers;
    for my $w (@w) {
        my ($u) = RPNginx::slurp("/proc/$w/status") =~ /^Uid:\s+(\d+)/m;
        is($u, $uid, "worker $w runs as nobody");
    }
    my $master = $ng->pid;
    $ng->stop;
    my (%setuid_at, %ring_at, %lines);
    for my $file (glob "$dir/trace.*") {
        my ($pid) = $file =~ /\.(\d+)$/ or next;
        my @t = split /\n/, RPNginx::slurp($file);
        $lines{$pid} = \@t;
        for my $i (0 .. $#t) {
            my ($call) = $t[$i] =~ /^(\w+)\(/ or next;
            $setuid_at{$pid} //= $i if $call =~ /^set(res)?uid$/
                && $t[$i] =~ /^\w+\($uid\b/ && $t[$i] =~ /= 0$/;
            push @{ $ring_at{$pid} }, $i if $call eq 'io_uring_setup'
                && $t[$i] =~ /= \d+$/;
        }
    }
    ok(keys %lines >= 3, 'traces of the master and both workers')
        or diag(join ' ', glob "$dir/trace*");
    ok(!$ring_at{$master}, 'the master made no ring');
    if (!mode_info($mode)->{ring}) {
        is(scalar keys %ring_at, 0, "$mode: no io_uring_setup at all");
        return;
    }
    my @ringed = grep { $ring_at{$_} } keys %ring_at;
    ok(@ringed >= 2, 'each of the 2 workers made a ring');
    for my $p (@ringed) {
        ok(defined $setuid_at{$p} && $setuid_at{$p} < $ring_at{$p}[0],
            "process $p: setuid($uid) before its io_uring_setup")
            or diag(join "\n", @{ $lines{$p} });
    }
});

done_testing;
