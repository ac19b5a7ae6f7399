# Two system calls that podman's default seccomp profile denies and that
# config/seccomp-io_uring.json must deny too (x86_64 numbers), each made with
# arguments that succeed when nothing filters them.  Prints one line each:
# "NAME ok" or "NAME errno N".  Run inside a container: perl -e "$(cat ...)".
#   vmsplice   named by the profile's explicit EPERM rule
#   cachestat  (Linux 6.5) newer than the profile: its default action, ENOSYS
# The old denylist profile let both through.
sub show { my ($name, $r) = @_;
           print "$name ", ($r >= 0 ? "ok" : "errno " . ($! + 0)), "\n"; }
pipe(my $rd, my $wr) or die "pipe: $!";
my $buf = "x" x 8;
my $iov = pack("pQ", $buf, length $buf);
show("vmsplice", syscall(278, fileno($wr), $iov, 1, 0));
open(my $f, "<", "/etc/hostname") or die "open: $!";
my $range = pack("QQ", 0, 0);
my $stat = "\0" x 40;
show("cachestat", syscall(451, fileno($f), $range, $stat, 0));
