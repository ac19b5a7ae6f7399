package RPInject;

# Loaded into every test of nginx's own suite through PERL5OPT (see
# tests/nginx-tests/run.pl), so that no test file is edited: every
# configuration Test::Nginx writes gets $RP_EVENTS (the event mode's
# directives) at the top of its events {} block.  The main-context lines
# (load_module, user) come through Test::Nginx's own TEST_NGINX_GLOBALS.

use strict;
use warnings;

require Test::Nginx;

my $events = $ENV{RP_EVENTS} // '';

if (length $events) {
    no warnings 'redefine';
    my $orig = \&Test::Nginx::write_file_expand;
    *Test::Nginx::write_file_expand = sub ($$) {
        my ($self, $name, $content) = @_;
        $content =~ s/^(\s*events\s*\{)/$1\n    $events\n/m;
        return $orig->($self, $name, $content);
    };
}

1;
