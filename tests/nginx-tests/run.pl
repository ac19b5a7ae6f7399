#!/usr/bin/perl

# nginx's own test suite (nginx-tests, the revision that matches 1.22) run
# against Debian's nginx in every event mode: epoll (stock nginx, no module),
# io_uring readiness and io_uring completion.  No test file is edited: the
# module is loaded through Test::Nginx's TEST_NGINX_GLOBALS and the events
# directives are put into every events {} block by lib/RPInject.pm, loaded
# into each test through PERL5OPT.
#
# Usage: run.pl SUITE_DIR [MODE ...]
#   env NGINX_TESTS_JOBS (4), NGINX_TESTS_FILES ("h2*.t grpc.t": a subset),
#   RP_RESULTS (results file), RP_NGINX_MODULE (the .so), RP_NGINX_BIN,
#   RP_NGINX_MODULES_DIR (that nginx's own dynamic modules), RP_NGINX_TESTS_OUT
#   (the output directory: build/nginx-tests).
#
# Per mode it prints files, tests, failed files and wall time.  A file that
# fails is run once more on its own in the same mode (the suite's timing
# tests do not all tolerate a loaded 2-CPU machine) and the rerun's verdict
# is reported with the first.  Results, per io_uring mode and file: PASS;
# FAIL when the file passes on epoll; SKIP when it fails on epoll too (not an
# event-module matter) or when the suite skips it (a missing module or
# daemon: the reason is the suite's own).  The run fails when any file that
# passes on epoll fails in either io_uring mode.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname basename);
use File::Copy qw(copy);
use File::Path qw(make_path);
use TAP::Harness;
use Time::HiRes qw(time);

my $here = abs_path(dirname(__FILE__));
my $top = abs_path("$here/../..");
my $suite = abs_path(shift @ARGV // die "usage: run.pl SUITE_DIR [MODE...]\n");
my @modes = @ARGV ? @ARGV : qw(epoll io_uring_readiness io_uring_completion);
my $jobs = $ENV{NGINX_TESTS_JOBS} || 4;
my $out = $ENV{RP_NGINX_TESTS_OUT} || "$top/build/nginx-tests";
make_path($out);

# a copy of the module: a rebuild during the run must not rewrite the file
# that running workers have mapped
my $so_src = $ENV{RP_NGINX_MODULE}
    || "$top/build/module/ngx_event_io_uring_module.so";
my $so = "$out/ngx_event_io_uring_module.so";
if (grep { /io_uring/ } @modes) {
    -f $so_src or die "run.pl: no module at $so_src (make module)\n";
    copy($so_src, $so) or die "copy $so_src: $!\n";
}

# memcached refuses to run as root without -u: as root, the suite's
# memcached tests would fail in every mode, epoll included, and test nothing
if ($> == 0 && -x '/usr/bin/memcached') {
    make_path("$out/bin");
    open my $fh, '>', "$out/bin/memcached" or die "$out/bin/memcached: $!\n";
    print $fh "#!/bin/sh\nexec /usr/bin/memcached -u nobody \"\$@\"\n";
    close $fh;
    chmod 0755, "$out/bin/memcached";
    $ENV{PATH} = "$out/bin:$ENV{PATH}";
}

my %MODES = (
    epoll               => { main => '', events => '' },
    io_uring_readiness  => { main => "load_module $so;",
                             events => 'use io_uring; io_uring_completion off;' },
    io_uring_completion => { main => "load_module $so;",
                             events => 'use io_uring; io_uring_completion on;' },
);

my @files;
if ($ENV{NGINX_TESTS_FILES}) {
    my %seen;
    @files = grep { !$seen{$_}++ } map { basename($_) }
        map { glob("$suite/$_") } split ' ', $ENV{NGINX_TESTS_FILES};
} else {
    opendir my $dh, $suite or die "opendir $suite: $!\n";
    @files = sort grep { /\.t$/ } readdir $dh;
}
@files or die "run.pl: no test files in $suite\n";

# Run @list in $mode, $j at a time (TAP of each file into $mode.log when
# $verbose); returns { file => { ok, tests, failed, skip } } and
# the wall time.
sub run_mode {
    my ($mode, $j, $verbose, @list) = @_;
    my $m = $MODES{$mode} or die "run.pl: unknown mode $mode\n";
    local $ENV{TEST_NGINX_BINARY} = $ENV{RP_NGINX_BIN} || '/usr/sbin/nginx';
    local $ENV{TEST_NGINX_MODULES} = $ENV{RP_NGINX_MODULES_DIR}
        || '/usr/lib/nginx/modules';
    # as root, workers would switch to nobody and not reach the test's
    # private directory
    local $ENV{TEST_NGINX_GLOBALS} = $m->{main}
        . ($> == 0 ? ' user root;' : '');
    local $ENV{RP_EVENTS} = $m->{events};
    local $ENV{PERL5OPT} = "-I$suite/lib -I$here/lib -MRPInject";
    local $ENV{TEST_NGINX_VERBOSE};
    local $ENV{TEST_NGINX_LEAVE};
    my $log = "$out/$mode.log";
    open my $lfh, '>>', $log or die "open $log: $!\n";
    my $h = TAP::Harness->new({
        jobs      => $j,
        lib       => [ "$suite/lib" ],
        merge     => 1,
        timer     => 1,
        verbosity => $verbose ? 1 : -3,
        # a hung nginx (or test) ends the file, not the run
        exec      => [ 'timeout', '-k', '10', '300', $^X, "-I$suite/lib" ],
        stdout    => $lfh,
    });
    my $cwd = Cwd::getcwd();
    chdir $suite or die "chdir $suite: $!\n";
    my $t0 = time;
    my $agg = $h->runtests(@list);
    my $wall = time - $t0;
    chdir $cwd;
    my %r;
    for my $f (@list) {
        my ($p) = $agg->parsers($f);
        my $skip = $p->skip_all;
        $r{$f} = {
            ok     => !$p->has_problems,
            tests  => $p->tests_run,
            failed => scalar($p->failed),
            skip   => $skip,
            exit   => $p->exit,
            secs   => ($p->end_time // 0) - ($p->start_time // 0),
        };
    }
    close $lfh;
    return (\%r, $wall);
}

my (%res, %wall, %rerun);
for my $mode (@modes) {
    unlink "$out/$mode.log";
    my ($r, $wall) = run_mode($mode, $jobs, 0, @files);
    for my $f (sort grep { !$r->{$_}{ok} } keys %$r) {
        my ($again) = run_mode($mode, 1, 1, $f);
        $rerun{$mode}{$f} = $again->{$f}{ok} ? 'passed' : 'failed';
        $r->{$f}{ok} = $again->{$f}{ok};
        $r->{$f}{first_failed} = 1;
    }
    $res{$mode} = $r;
    $wall{$mode} = $wall;
    my @failed = sort grep { !$r->{$_}{ok} } keys %$r;
    my $tests = 0;
    $tests += $_->{tests} for values %$r;
    my $skipped = grep { $r->{$_}{skip} } keys %$r;
    printf "nginx-tests %-20s %d files (%d skipped by the suite), %d tests, "
        . "%d failed files, %.0f s\n", $mode, scalar(@files), $skipped,
        $tests, scalar(@failed), $wall;
    printf "    failed: %s\n", join(' ', map { s/\.t$//r } @failed) if @failed;
    my @flaky = sort grep { $rerun{$mode}{$_} eq 'passed' } keys %{ $rerun{$mode} || {} };
    printf "    failed in the full run, passed alone: %s\n",
        join(' ', map { s/\.t$//r } @flaky) if @flaky;
}

my $res_file = $ENV{RP_RESULTS};
my $rfh;
if ($res_file) { open $rfh, '>>', $res_file or die "open $res_file: $!\n" }
sub record { print $rfh "$_[0]\n" if $rfh }

my $base = $res{epoll};
my $bad = 0;
for my $mode (grep { $_ ne 'epoll' } @modes) {
    my $r = $res{$mode};
    for my $f (@files) {
        my $name = "nginx-tests/" . ($f =~ s/\.t$//r) . " [$mode]";
        my $x = $r->{$f};
        my $note = $x->{first_failed} && $x->{ok}
            ? ' (failed in the full run, passed alone)' : '';
        if (defined $x->{skip}) {
            record("SKIP $name -- skipped by nginx-tests: $x->{skip}");
        } elsif ($x->{ok}) {
            record("PASS $name$note");
        } elsif ($base && !$base->{$f}{ok}) {
            record("SKIP $name -- fails on epoll too ("
                . ($base->{$f}{failed} || 'exit ' . ($base->{$f}{exit} // '?'))
                . " failed there), not an event-module matter");
        } else {
            record("FAIL $name ($x->{failed} of $x->{tests} failed, also when "
                . "run alone; see $out/$mode.log)");
            $bad++;
        }
    }
    # reported, not asserted: a wall time is no test verdict on a shared
    # machine, but a mode that waits out timeouts shows here first
    printf "nginx-tests %s wall time: %.0f s, %.2fx epoll's %.0f s\n", $mode,
        $wall{$mode}, $wall{$mode} / $wall{epoll}, $wall{epoll}
        if $base && $wall{epoll} > 0;
    # the files that took longest over their epoll time
    if ($base) {
        my @slow = sort { $b->[1] <=> $a->[1] }
            grep { $_->[1] >= 2 }
            map { [$_, ($r->{$_}{secs} // 0) - ($base->{$_}{secs} // 0)] } @files;
        printf "nginx-tests %s slower than epoll by 2 s or more: %s\n", $mode,
            join(', ', map { sprintf '%s +%.0f s', $_->[0] =~ s/\.t$//r, $_->[1] }
                @slow[0 .. ($#slow < 9 ? $#slow : 9)]) || 'none';
    }
}
if (!$base) {
    # each io_uring mode's files were recorded above, a failing one as FAIL
    print "nginx-tests: no epoll run to compare with (MODES without epoll): "
        . "a file failing on epoll too is FAIL here\n";
} else {
    my @ef = sort grep { !$base->{$_}{ok} } @files;
    printf "nginx-tests epoll baseline: %d of %d files fail on stock nginx: %s\n",
        scalar(@ef), scalar(@files), join(' ', map { s/\.t$//r } @ef) || 'none';
}
exit($bad ? 1 : 0);
