package RPNginx;

# Helpers for the nginx integration suite: the table of event modes, a real
# nginx (/usr/sbin/nginx) started per case from a generated configuration,
# free loopback ports, clients (curl, raw sockets), and the checks every case
# ends with (error log, worker really on the ring).
#
# A case is written once and run in every mode named by $MODES:
#
#     rp_case('static-sendfile', sub {
#         my ($mode, $dir) = @_;
#         my $ng = nginx_start($mode, $dir, http => '...');
#         ...assertions...
#         $ng->stop;                  # QUIT, then the error log checks
#     });
#
# Each (case, mode) is a Test::More subtest and one line in $RP_RESULTS:
# "PASS nginx/static-sendfile [io_uring_completion]".

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA;
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Copy ();
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Socket qw(SOL_SOCKET SO_LINGER);
use Test::More;
use Time::HiRes qw(time sleep);

our @EXPORT = qw(rp_case rp_skip nginx_start modes mode_info make_file file_sha256
    data_sha256 curl curl_fetch run_cmd raw_connect raw_request read_response
    wait_until linger_reset perl_child kill_child hash_upstream spawn_cmd wait_cmd $TOP $BUILD);

our $TOP = abs_path(dirname(__FILE__) . '/../../..');
our $BUILD = $ENV{RP_NGINX_BUILD} || "$TOP/build/tests-nginx";
our $NGINX = $ENV{RP_NGINX_BIN} || '/usr/sbin/nginx';
our $MODULE_SO = $ENV{RP_NGINX_MODULE}
    || "$TOP/build/module/ngx_event_io_uring_module.so";
# nginx's own dynamic modules: Debian's, or RP_NGINX_MODULES_DIR's for
# another nginx build (a module loads only into the version it was built for)
our $MODULES_DIR = $ENV{RP_NGINX_MODULES_DIR} || '/usr/lib/nginx/modules';
our $STREAM_SO = "$MODULES_DIR/ngx_stream_module.so";

# The event modes.  A mode is what goes before events {} (load_module lines),
# what goes inside it, the shared object it needs, whether its workers must
# hold an io_uring instance, and the error-log line that proves the module
# is the one in charge.  The module's two modes are io_uring_readiness and
# io_uring_completion (its default); io_uring is `use io_uring;` alone.
# %%SO%% in main is the case's own copy of the shared object: a rebuild
# during a run rewrites the file in place, and nginx processes that have it
# mapped die.
our %MODES = (
    epoll => {
        main   => '',
        events => 'use epoll;',
        so     => undef,
        ring   => 0,
    },
    io_uring => {
        main   => 'load_module %%SO%%;',
        events => 'use io_uring;',
        so     => $MODULE_SO,
        ring   => 1,
        # the module's per-worker line: "using io_uring: sq 1024, ..."
        notice => qr/\[notice\].*(\busing io_uring\b|io_uring.*\b(in use|using)\b)/i,
    },
    # completion mode: reads and writes of plain TCP connections through the ring
    # (the module's default); the notice names the provided buffers
    io_uring_completion => {
        main   => 'load_module %%SO%%;',
        events => 'use io_uring; io_uring_completion on;',
        so     => $MODULE_SO,
        ring   => 1,
        notice => qr/\[notice\].*\busing io_uring:.*\bbuffers\b/i,
    },
    # readiness only: multishot polls, nginx's own recv/send
    io_uring_readiness => {
        main   => 'load_module %%SO%%;',
        events => 'use io_uring; io_uring_completion off;',
        so     => $MODULE_SO,
        ring   => 1,
        notice => qr/\[notice\].*\busing io_uring\b/i,
    },
);

sub modes {
    my $list = $ENV{MODES} // 'epoll io_uring_readiness io_uring_completion';
    return grep { length } split /[\s,]+/, $list;
}

sub mode_info { return $MODES{ $_[0] } }

# ---------------------------------------------------------------- cases

my %live;           # pid => what, everything we started and must reap

sub record {
    my ($line) = @_;
    my $file = $ENV{RP_RESULTS} or return;
    open my $fh, '>>', $file or die "open $file: $!";
    print $fh "$line\n";
    close $fh;
}

# Run $code once per mode as a subtest; $code gets the mode name and a fresh
# directory.  A case that dies, hangs past its timeout or fails an assertion
# fails in that mode only; whatever it started is killed.
sub rp_case {
    my ($name, $code, %opt) = @_;
    my $timeout = $opt{timeout} || 120;

    for my $mode (modes()) {
        my $label = "$name [$mode]";
        my $dir = "$BUILD/$name/$mode";
        remove_tree($dir);
        make_path($dir);

        my $skip;
        my $ok = subtest $label => sub {
            my $m = $MODES{$mode};
            if (!$m) {
                fail("unknown mode '$mode' (known: "
                    . join(' ', sort keys %MODES) . ')');
                return;
            }
            if ($m->{so} && !-f $m->{so}) {
                fail("mode $mode needs $m->{so}, which does not exist "
                    . "(make module)");
                return;
            }
            my $err;
            {
                local $SIG{ALRM} = sub { die "case timed out after ${timeout}s\n" };
                alarm $timeout;
                eval { $code->($mode, $dir); 1 } or $err = $@ || 'died';
                alarm 0;
            }
            kill_all();
            if (ref $err eq 'RPNginx::Skip') {
                $skip = $$err;
                plan skip_all => $skip;
            } elsif (defined $err) {
                fail("case died: $err");
            }
        };
        record(defined $skip ? "SKIP nginx/$label -- $skip"
            : ($ok ? 'PASS' : 'FAIL') . " nginx/$label");
        remove_tree($dir) if $ok && !$ENV{RP_NGINX_KEEP};
    }
}

sub children_of {
    my ($ppid) = @_;
    my @c;
    opendir my $dh, '/proc' or return;
    for my $p (grep { /^\d+$/ } readdir $dh) {
        my $st = slurp("/proc/$p/stat");
        push @c, $p if $st =~ /\)\s+\S+\s+(\d+)/ && $1 == $ppid;
    }
    return @c;
}

# Kill what a case left running; an nginx master's workers first, as they
# outlive a killed master.
# Give up a case because the machine cannot run it (not because nginx
# failed): recorded as SKIP with the reason.
sub rp_skip {
    my ($why) = @_;
    die bless \$why, 'RPNginx::Skip';
}

sub kill_all {
    for my $pid (keys %live) {
        kill 'KILL', children_of($pid) if $live{$pid} eq 'nginx';
        kill 'KILL', $pid;
        waitpid $pid, 0;
        delete $live{$pid};
    }
}

END {
    my $status = $?;
    kill_all();
    $? = $status;
}

# ---------------------------------------------------------------- files

# A file of $size pseudo-random bytes (fixed seed per name, so every run and
# every mode serves the same content).
sub make_file {
    my ($path, $size) = @_;
    open my $fh, '>:raw', $path or die "open $path: $!";
    my $seed = unpack('N', Digest::SHA::sha256($path . $size));
    my $block = '';
    my $state = Digest::SHA::sha512("$seed");
    while (length $block < 65536) {
        $state = Digest::SHA::sha512($state);
        $block .= $state;
    }
    my $left = $size;
    my $i = 0;
    while ($left > 0) {
        # vary each block so offsets are not interchangeable
        my $chunk = pack('N', $i++) . substr($block, 4);
        $chunk = substr($chunk, 0, $left) if $left < length $chunk;
        print $fh $chunk or die "write $path: $!";
        $left -= length $chunk;
    }
    close $fh or die "close $path: $!";
    return $path;
}

sub file_sha256 {
    my ($path) = @_;
    return undef unless -f $path;
    return Digest::SHA->new(256)->addfile($path, 'b')->hexdigest;
}

sub data_sha256 { return Digest::SHA::sha256_hex($_[0]) }

# ---------------------------------------------------------------- ports

my %taken;

# A loopback port that was free a moment ago: bind port 0 and read it back.
sub free_port {
    my ($proto) = @_;
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1', LocalPort => 0,
            Proto => $proto || 'tcp', ReuseAddr => 0,
            ($proto && $proto eq 'udp') ? () : (Listen => 1),
        ) or die "bind 127.0.0.1:0: $!";
        my $p = $s->sockport;
        close $s;
        next if $taken{$p}++;
        # a port must be free for both protocols: the suite uses both
        my $o = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1', LocalPort => $p,
            Proto => ($proto && $proto eq 'udp') ? 'tcp' : 'udp',
        ) or next;
        close $o;
        return $p;
    }
    die "no free port";
}

# ---------------------------------------------------------------- nginx

# Start nginx in $mode with a configuration made from the named parts:
#   http   => text inside http {}      stream => text inside stream {}
#   main   => extra main-level text    events => extra text inside events {}
#   workers, connections, rlimit
# In the text, %%PORT_name%% and %%UDP_name%% become free ports (one per
# name), %%DIR%% the case directory.  Waits until every TCP port answers.
sub nginx_start {
    my ($mode, $dir, %o) = @_;
    my $m = $MODES{$mode} or die "unknown mode $mode";

    for my $attempt (1 .. 3) {
        my $ng = bless {
            mode => $mode, dir => $dir, m => $m, opt => \%o,
            ports => {}, udp => {},
        }, 'RPNginx::Server';
        my $conf = $ng->_config;
        my $r = $ng->_launch($conf);
        if ($r eq 'ok') {
            $ng->{tails0} = $ng->ring_tails;
            return $ng;
        }
        if ($r eq 'bind' && $attempt < 3) {
            diag("port clash, retrying with new ports");
            next;
        }
        die "nginx did not start: $r\n";
    }
}

package RPNginx::Server;

use strict;
use warnings;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(time sleep);

sub port { my ($s, $n) = @_; return $s->{ports}{$n} // die "no port $n" }
sub udp  { my ($s, $n) = @_; return $s->{udp}{$n} // die "no udp port $n" }
sub dir  { return $_[0]{dir} }
sub pid  { return $_[0]{pid} }
sub log_file { return "$_[0]{dir}/error.log" }
sub access_log { return "$_[0]{dir}/access.log" }

sub _subst {
    my ($s, $text) = @_;
    return '' unless defined $text;
    $text =~ s/%%PORT_(\w+)%%/$s->{ports}{$1} ||= RPNginx::free_port('tcp')/ge;
    $text =~ s/%%UDP_(\w+)%%/$s->{udp}{$1} ||= RPNginx::free_port('udp')/ge;
    $text =~ s/%%DIR%%/$s->{dir}/g;
    $text =~ s/%%SO%%/$s->{so}/g if $s->{so};
    return $text;
}

sub _config {
    my ($s) = @_;
    my $o = $s->{opt};
    my $d = $s->{dir};
    my $m = $s->{m};
    mkdir "$d/$_" for qw(conf logs tmp);
    my $workers = $o->{workers} || 1;
    my $conns = $o->{connections} || 1024;
    my $rlimit = $o->{rlimit} || ($conns * 2 + 64);
    # workers may raise their limit only up to the hard one
    my ($hard) = RPNginx::slurp('/proc/self/limits') =~ /^Max open files\s+\S+\s+(\d+)/m;
    $rlimit = $hard if $hard && $rlimit > $hard;
    my $user = $o->{user} ? "user $o->{user};\n"
        : $> == 0 ? "user root root;\n" : '';
    if ($m->{so}) {
        mkdir "$d/modules";
        $s->{so} = "$d/modules/" . File::Basename::basename($m->{so});
        File::Copy::copy($m->{so}, $s->{so}) or die "copy $m->{so}: $!";
    }
    my $mode_main = $s->_subst($m->{main});
    my $stream_load = defined $o->{stream} ? "load_module $RPNginx::STREAM_SO;\n" : '';
    my $http = $s->_subst($o->{http});
    my $stream = $s->_subst($o->{stream});
    my $main = $s->_subst($o->{main});
    my $events = $s->_subst($o->{events});

    my $conf = <<"EOF";
$mode_main
$stream_load
${user}worker_processes $workers;
worker_rlimit_nofile $rlimit;
daemon @{[ $o->{daemon} ? 'on' : 'off' ]};
master_process on;
pid $d/nginx.pid;
error_log $d/error.log notice;
$main

events {
    $m->{events}
    worker_connections $conns;
    $events
}
EOF
    $conf .= <<"EOF" if defined $o->{http};

http {
    default_type application/octet-stream;
    access_log $d/access.log;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;

$http
}
EOF
    $conf .= "\nstream {\n$stream\n}\n" if defined $o->{stream};
    my $file = "$d/conf/nginx.conf";
    open my $fh, '>', $file or die "$file: $!";
    print $fh $conf;
    close $fh;
    return $file;
}

sub _launch {
    my ($s, $conf) = @_;
    my $d = $s->{dir};
    unlink "$d/error.log", "$d/nginx.pid";
    my ($rc, $out) = RPNginx::run_cmd(30, $RPNginx::NGINX, '-t', '-q',
        '-p', "$d/", '-c', $conf);
    return "nginx -t failed: $out" if $rc != 0;
    unlink "$d/error.log";
    if ($s->{opt}{daemon}) {
        # a daemon: its parent is gone, as nginx wants for a binary
        # upgrade (USR2 is ignored while the starting parent lives); the
        # caller stops it, it is no child of ours
        ($rc, $out) = RPNginx::run_cmd(30, $RPNginx::NGINX, '-p', "$d/",
            '-c', $conf);
        return "nginx (daemon) failed: $out" if $rc != 0;
        RPNginx::wait_until(10, sub { -s "$d/nginx.pid" })
            or return 'no pid file';
        ($s->{pid}) = RPNginx::slurp("$d/nginx.pid") =~ /(\d+)/;
        RPNginx::wait_until(15, sub { $s->workers }) or return 'no workers';
        $s->{seen_workers}{$_} = 1 for $s->workers;
        return 'ok';
    }
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>>', "$d/stdout";
        open STDERR, '>>', "$d/stderr";
        exec $RPNginx::NGINX, '-p', "$d/", '-c', $conf;
        exit 127;
    }
    $live{$pid} = 'nginx';
    $s->{pid} = $pid;
    my $deadline = time + 15;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $live{$pid};
            my $log = RPNginx::slurp("$d/error.log") . RPNginx::slurp("$d/stderr");
            return 'bind' if $log =~ /Address already in use/;
            return "exited with status $?: $log";
        }
        my $up = 1;
        for my $p (values %{ $s->{ports} }) {
            my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                PeerPort => $p, Timeout => 1);
            if (!$c) { $up = 0; last }
            close $c;
        }
        if ($up && $s->workers) {
            $s->{seen_workers}{$_} = 1 for $s->workers;
            return 'ok';
        }
        sleep 0.05;
    }
    return 'not listening after 15s: ' . RPNginx::slurp("$d/error.log");
}

# The master's children, cache manager/loader excluded (none configured).
sub workers {
    my ($s) = @_;
    my @w;
    opendir my $dh, '/proc' or return;
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$p/stat" or next;
        my $stat = <$fh> // next;
        close $fh;
        # pid (comm) state ppid ...
        next unless $stat =~ /\)\s+(\S)\s+(\d+)/;
        next if $1 eq 'Z';
        push @w, $p if $2 == $s->{pid};
    }
    @w = sort { $a <=> $b } @w;
    return @w;
}

# io_uring instances a process holds, with the ring's head/tail counters.
sub rings_of {
    my ($pid) = @_;
    my @r;
    opendir my $dh, "/proc/$pid/fd" or return;
    for my $fd (grep { /^\d+$/ } readdir $dh) {
        my $l = readlink "/proc/$pid/fd/$fd" // next;
        next unless $l eq 'anon_inode:[io_uring]';
        my %info = (fd => $fd);
        if (open my $fh, '<', "/proc/$pid/fdinfo/$fd") {
            while (<$fh>) { $info{$1} = $2 if /^(\w+):\s+(\S+)/ }
        }
        push @r, \%info;
    }
    return @r;
}

sub holds {
    my ($pid, $link) = @_;
    opendir my $dh, "/proc/$pid/fd" or return 0;
    for my $fd (grep { /^\d+$/ } readdir $dh) {
        return 1 if (readlink("/proc/$pid/fd/$fd") // '') eq $link;
    }
    return 0;
}

# Count the system calls the workers make while $code runs (strace -c);
# returns { name => calls }, or undef when strace could not attach.
sub syscalls {
    my ($s, $code) = @_;
    my @w = $s->workers;
    my $out = "$s->{dir}/strace.out";
    unlink $out;
    my $st = RPNginx::spawn_cmd(60, "$out.log", 'strace', '-c', '-f',
        (map { ('-p', $_) } @w), '-o', $out);
    RPNginx::wait_until(5, sub {
        !grep { !(RPNginx::slurp("/proc/$_/status") =~ /^TracerPid:\s+[1-9]/m) } @w });
    $code->();
    # strace runs under timeout(1), which passes SIGINT on
    kill 'INT', $st;
    RPNginx::wait_cmd($st);
    my $text = RPNginx::slurp($out);
    return undef unless $text =~ /total/;
    my %n;
    for (split /\n/, $text) {
        # % time  seconds  usecs/call  calls  [errors]  syscall
        $n{$2} = $1 if /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/;
    }
    delete $n{total};
    return \%n;
}

sub ring_tails {
    my ($s) = @_;
    my %t;
    for my $w ($s->workers) {
        my $sum = 0;
        $sum += ($_->{CqTail} // 0) + ($_->{SqHead} // 0) for rings_of($w);
        $t{$w} = $sum;
    }
    return \%t;
}

# Assert the workers are on the event method the mode promises: in a ring
# mode every worker holds an io_uring instance whose completion counters
# moved since $before (a ring_tails() snapshot taken before some traffic);
# in epoll mode no worker holds one.
sub check_ring {
    my ($s, $before) = @_;
    my @w = $s->workers;
    ok(@w > 0, "workers running") or return;
    $s->{seen_workers}{$_} = 1 for @w;
    my @epoll = grep { holds($_, 'anon_inode:[eventpoll]') } @w;
    if (!$s->{m}{ring}) {
        my @with = grep { rings_of($_) } @w;
        is("@with", '', "no worker holds an io_uring instance in $s->{mode} mode");
        is(scalar @epoll, scalar @w, 'every worker holds an epoll instance');
        return;
    }
    # a worker that quietly went back to epoll would hold one
    is("@epoll", '', "no worker holds an epoll instance in $s->{mode} mode");
    my $after = $s->ring_tails;
    my $moved = 0;
    for my $w (@w) {
        my @r = rings_of($w);
        ok(@r > 0, "worker $w holds an io_uring instance")
            or diag(`ls -l /proc/$w/fd 2>&1`);
        $moved++ if $before && $after->{$w} != ($before->{$w} // 0);
    }
    ok($moved > 0, "ring counters moved while serving traffic")
        or diag(explain({ before => $before, after => $after }))
        if $before;
}

# Sockets the workers still hold although their peer closed (CLOSE_WAIT):
# a close or EOF event the event method never delivered.
sub close_wait {
    my ($s) = @_;
    my %cw;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        for (split /\n/, RPNginx::slurp($f)) {
            my @f = split ' ';
            # sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            $cw{ $f[9] } = "$f[1] $f[2]" if @f > 9 && $f[3] eq '08';
        }
    }
    my @held;
    for my $w ($s->workers) {
        opendir my $dh, "/proc/$w/fd" or next;
        for my $fd (grep { /^\d+$/ } readdir $dh) {
            my $l = readlink("/proc/$w/fd/$fd") // next;
            push @held, "worker $w fd $fd ($cw{$1})"
                if $l =~ /^socket:\[(\d+)\]$/ && $cw{$1};
        }
    }
    return @held;
}

sub reload {
    my ($s) = @_;
    my %old = map { $_ => 1 } $s->workers;
    kill 'HUP', $s->{pid};
    my $deadline = time + 15;
    while (time < $deadline) {
        my @new = grep { !$old{$_} } $s->workers;
        if (@new >= ($s->{opt}{workers} || 1)) {
            $s->{seen_workers}{$_} = 1 for @new;
            return 1;
        }
        sleep 0.05;
    }
    return 0;
}

# The checks every case ends with: the workers are on the mode's event
# method and used it since start; a graceful stop (QUIT) works; the error
# log is clean.
sub stop {
    my ($s, %o) = @_;
    my $pid = $s->{pid};
    return unless $pid && $live{$pid};
    $s->check_ring($s->{tails0}) unless $o{no_ring};
    my @cw;
    RPNginx::wait_until(10, sub { !(@cw = $s->close_wait) });
    is(scalar @cw, 0, 'no socket left in CLOSE_WAIT after 10 s')
        or diag(join "\n", @cw[0 .. ($#cw < 9 ? $#cw : 9)]);
    $s->{seen_workers}{$_} = 1 for $s->workers;
    kill 'QUIT', $pid;
    my $limit = $o{timeout} || 20;
    my $deadline = time + $limit;
    my $done = 0;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) { $done = 1; last }
        sleep 0.05;
    }
    if (!$done) {
        kill 'KILL', $_ for $s->workers;
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
    delete $live{$pid};
    ok($done, "nginx exited on QUIT within ${limit}s");
    $s->check_log(%o);
}

# $o{errors}: a pattern for the [error] lines the case provokes on purpose;
# any other [error] line fails it.
sub check_log {
    my ($s, %o) = @_;
    my $log = RPNginx::slurp($s->log_file);
    # paths under the case directory name the mode; keep them out of the
    # io_uring matches below
    $log =~ s/\Q$s->{dir}\E/<dir>/g;
    my @bad = grep { /\[(alert|crit|emerg)\]|exited on signal/ } split /\n/, $log;
    ok(!@bad, 'error log: no alert/crit/emerg, no worker died')
        or diag(join "\n", @bad[0 .. ($#bad < 19 ? $#bad : 19)]);
    my $allowed = $o{errors} || qr/(?!)/;
    my @err = grep { /\[error\]/ && !/$allowed/ } split /\n/, $log;
    ok(!@err, 'error log: no unexpected [error]')
        or diag(join "\n", @err[0 .. ($#err < 9 ? $#err : 9)]);
    my $m = $s->{m};
    return unless $m->{ring};
    my @warn = grep { /\[warn\].*io_uring/i } split /\n/, $log;
    ok(!@warn, 'error log: no io_uring fallback warning') or diag("@warn");
    my @notice = grep { $_ =~ $m->{notice} && !/not available|using epoll/i }
        split /\n/, $log;
    ok(@notice > 0, "error log: module notice (io_uring in use)")
        or diag("error log:\n" . substr($log, 0, 3000));
    my %noted = map { /\s(\d+)#\d+:/ ? ($1 => 1) : () } @notice;
    my @silent = grep { !$noted{$_} } sort keys %{ $s->{seen_workers} || {} };
    is("@silent", '', 'every worker logged the io_uring notice');
}

sub log_text { return RPNginx::slurp($_[0]->log_file) }

package RPNginx;

sub slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return '';
    local $/;
    my $d = <$fh>;
    return $d // '';
}

# ---------------------------------------------------------------- clients

# Run a command with a hard time limit; returns (exit status, stdout).
sub run_cmd {
    my ($limit, @cmd) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        exec 'timeout', '-k', '5', $limit, @cmd;
        exit 127;
    }
    $live{$pid} = $cmd[0];
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my $rc = $? >> 8;
    delete $live{$pid};
    return ($rc, $out);
}

# curl with a time limit; returns (exit status, output).
sub curl {
    my (@args) = @_;
    return run_cmd(120, 'curl', '-sS', '--max-time', '100', @args);
}

# Fetch $url into $out; returns (http status, sha256 of body, size).
sub curl_fetch {
    my ($url, $out, @opt) = @_;
    unlink $out;
    my ($rc, $o) = curl(@opt, '-o', $out, '-w', '%{http_code}', $url);
    diag("curl $url: exit $rc: $o") if $rc;
    my ($code) = $o =~ /(\d{3})\s*$/;
    return ($code // 0, file_sha256($out) // '', -s $out // 0);
}

sub raw_connect {
    my ($port, %o) = @_;
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 10, %o) or die "connect $port: $!";
    binmode $c;
    return $c;
}

# Read one HTTP/1.1 response (Content-Length or chunked) from $sock within
# $limit seconds; $buf is the caller's carry-over buffer (pipelining).
# Returns { status, headers => {lc name => value}, body } or undef on EOF or
# timeout.
sub read_response {
    my ($sock, $bufref, $limit) = @_;
    $limit ||= 30;
    my $deadline = time + $limit;
    my $need = sub {
        my ($cond) = @_;
        while (!$cond->()) {
            my $left = $deadline - time;
            return 0 if $left <= 0;
            my $rin = '';
            vec($rin, fileno($sock), 1) = 1;
            my $n = select(my $rout = $rin, undef, undef, $left);
            next if $n < 0 && $!{EINTR};
            return 0 if $n <= 0;
            my $r = sysread($sock, $$bufref, 262144, length $$bufref);
            return 0 if !$r;
        }
        return 1;
    };
    $need->(sub { index($$bufref, "\r\n\r\n") >= 0 }) or return undef;
    my $end = index($$bufref, "\r\n\r\n");
    my $head = substr($$bufref, 0, $end);
    substr($$bufref, 0, $end + 4) = '';
    my ($status_line, @h) = split /\r\n/, $head;
    my ($status) = $status_line =~ m{^HTTP/1\.[01] (\d{3})} or return undef;
    my %h;
    for (@h) { $h{ lc $1 } = $2 if /^([^:]+):\s*(.*)$/ }
    my $body = '';
    if (defined $h{'content-length'}) {
        my $len = $h{'content-length'};
        $need->(sub { length $$bufref >= $len }) or return undef;
        $body = substr($$bufref, 0, $len, '');
    } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        while (1) {
            $need->(sub { $$bufref =~ /\r\n/ }) or return undef;
            $$bufref =~ s/^([0-9a-fA-F]+)[^\r]*\r\n// or return undef;
            my $n = hex $1;
            $need->(sub { length $$bufref >= $n + 2 }) or return undef;
            $body .= substr($$bufref, 0, $n, '');
            substr($$bufref, 0, 2) = '';
            last if $n == 0;
        }
    }
    return { status => $status, headers => \%h, body => $body };
}

# One request on a fresh connection.
sub raw_request {
    my ($port, $req, $limit) = @_;
    my $c = raw_connect($port);
    print $c $req;
    my $buf = '';
    my $r = read_response($c, \$buf, $limit);
    close $c;
    return $r;
}

# Poll $cond every 50 ms for up to $limit seconds.
sub wait_until {
    my ($limit, $cond) = @_;
    my $deadline = time + $limit;
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.05;
    }
    return $cond->();
}

# Close with RST instead of FIN.
sub linger_reset {
    my ($sock) = @_;
    setsockopt($sock, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
}

# Fork a helper process running $code (an upstream, an echo server).
sub perl_child {
    my ($code) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $SIG{ALRM} = 'DEFAULT';
        alarm 0;
        eval { $code->() };
        POSIX::_exit(0);
    }
    $live{$pid} = 'child';
    return $pid;
}

# An HTTP/1.1 upstream in a child process that answers every request with
# the length and sha256 of the body it received ("length=N sha256=H
# te=chunked|length"), after an optional delay; one connection at a time,
# Connection: close.  Returns (port, pid).
sub hash_upstream {
    my (%o) = @_;
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Listen => 128, ReuseAddr => 1) or die "upstream listen: $!";
    my $port = $l->sockport;
    my $pid = perl_child(sub {
        while (my $c = $l->accept) {
            binmode $c;
            my $buf = '';
            my $fill = sub {
                my $r = sysread($c, $buf, 262144, length $buf);
                return $r;
            };
            my $ok = eval {
                while (index($buf, "\r\n\r\n") < 0) { $fill->() or die "eof\n" }
                my $end = index($buf, "\r\n\r\n");
                my $head = substr($buf, 0, $end + 4, '');
                my $sha = Digest::SHA->new(256);
                my $len = 0;
                my $te = 'length';
                if ($head =~ /^transfer-encoding:\s*chunked/mi) {
                    $te = 'chunked';
                    while (1) {
                        while ($buf !~ /\r\n/) { $fill->() or die "eof\n" }
                        $buf =~ s/^([0-9a-fA-F]+)[^\r]*\r\n// or die "bad chunk\n";
                        my $n = hex $1;
                        while (length $buf < $n + 2) { $fill->() or die "eof\n" }
                        $sha->add(substr($buf, 0, $n, ''));
                        $len += $n;
                        substr($buf, 0, 2) = '';
                        if ($n == 0) {
                            # trailer section ends with an empty line; the
                            # CRLF just removed was it when no trailers
                            last;
                        }
                    }
                } elsif ($head =~ /^content-length:\s*(\d+)/mi) {
                    my $n = $1;
                    while (length $buf < $n) { $fill->() or die "eof\n" }
                    $sha->add(substr($buf, 0, $n, ''));
                    $len = $n;
                }
                sleep $o{delay} if $o{delay};
                my $body = "length=$len sha256=" . $sha->hexdigest . " te=$te\n";
                print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($body)
                    . "\r\nConnection: close\r\n\r\n$body";
                1;
            };
            close $c;
        }
    });
    close $l;
    return ($port, $pid);
}

# Start a command in the background with a hard time limit, output to
# $out; wait_cmd() returns its exit status.
sub spawn_cmd {
    my ($limit, $out, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>', $out;
        open STDERR, '>&', \*STDOUT;
        exec 'timeout', '-k', '5', $limit, @cmd;
        exit 127;
    }
    $live{$pid} = $cmd[0];
    return $pid;
}

sub wait_cmd {
    my ($pid) = @_;
    waitpid $pid, 0;
    delete $live{$pid};
    return $? >> 8;
}

sub kill_child {
    my ($pid) = @_;
    return unless $pid && $live{$pid};
    kill 'KILL', $pid;
    waitpid $pid, 0;
    delete $live{$pid};
}

1;
