#!/bin/sh
# An unmodified Debian memcached on our libevent: LD_LIBRARY_PATH only.
# Every event base it makes must report the expected method, the process
# must have our libevent mapped, and a few hundred set/get round-trips from
# a Perl client must come back intact.
# Usage: tests/libevent/memcached.sh <libdir> <expected method> [launcher]
set -u
libdir=$(cd "$1" && pwd) method=$2 launcher=${3:-}
command -v memcached >/dev/null || { echo "skip: memcached not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
pid=

port=$(perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                  LocalPort => 0, ReuseAddr => 1) or die;
    print $s->sockport')
LD_LIBRARY_PATH=$libdir EVENT_SHOW_METHOD=1 $launcher \
    memcached -U 0 -p "$port" -l 127.0.0.1 -u root -t 4 2> "$tmp/err" &
pid=$!

perl -MIO::Socket::INET -e '
    my ($port, $n) = @ARGV;
    my $s;
    for (1 .. 100) {
        $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port)
            and last;
        select(undef, undef, undef, 0.05);
    }
    $s or die "cannot connect to memcached on port $port\n";
    $s->autoflush(1);
    for my $i (1 .. $n) {
        my $v = "value-$i-" . ("x" x ($i % 200));
        print $s "set k$i 0 0 " . length($v) . "\r\n$v\r\n";
        my $r = <$s>;
        $r eq "STORED\r\n" or die "set k$i: $r";
        print $s "get k$i\r\n";
        $r = <$s>;
        $r eq "VALUE k$i 0 " . length($v) . "\r\n" or die "get k$i: $r";
        $r = <$s>;
        $r eq "$v\r\n" or die "get k$i data: $r";
        $r = <$s>;
        $r eq "END\r\n" or die "get k$i end: $r";
    }
    print "$n set/get round-trips ok\n";
' "$port" 300 || { cat "$tmp/err"; exit 1; }

grep -q "$libdir/libevent" /proc/$pid/maps || {
    echo "memcached did not map $libdir/libevent"; grep libevent /proc/$pid/maps; exit 1; }
lines=$(grep -c "libevent using:" "$tmp/err")
other=$(grep "libevent using:" "$tmp/err" | grep -vc "libevent using: $method\$")
cat "$tmp/err"
[ "$lines" -gt 0 ] && [ "$other" -eq 0 ] || {
    echo "want every base on $method: $lines bases, $other on another method"; exit 1; }
echo "memcached: $lines event bases, all on $method"
