# LemonLDAP::NG's portal as Debian ships it (/usr/share/lemonldap-ng/portal/htdocs/index.psgi), with
# every request recorded first, one JSON line each: the suite's oracle for "the IdP received nothing".
use strict;
use warnings;
use JSON::PP;
use Lemonldap::NG::Portal::Main;

my $portal = Lemonldap::NG::Portal::Main->run( {} );
my $record = $ENV{SCOPEGATE_E2E_RECORD};

sub {
    my ($env) = @_;
    if ($record) {
        open my $log, '>>', $record or die "cannot record: $!";
        print $log encode_json(
            {
                method => $env->{REQUEST_METHOD},
                path   => $env->{PATH_INFO},
                query  => $env->{QUERY_STRING} // '',
            }
        ) . "\n";
        close $log;
    }
    return $portal->($env);
};
