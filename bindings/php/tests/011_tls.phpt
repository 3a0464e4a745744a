--TEST--
TLS: mcring's TLS options reach a memcached that speaks only TLS; a certificate that does not verify is a connection failure
--SKIPIF--
<?php include __DIR__ . '/skipif.inc';
if (!getenv('MCRING_TEST_TLS_SERVER')) die('skip MCRING_TEST_TLS_SERVER not set'); ?>
--FILE--
<?php
include __DIR__ . '/config.inc';
$M = 'Mcring\Memcached';
$dir = getenv('MCRING_TEST_TLS_DIR');

function tls_client(array $opts): Mcring\Memcached {
    [$h, $p] = explode(':', getenv('MCRING_TEST_TLS_SERVER'));
    $m = new Mcring\Memcached();
    $m->addServer($h, (int)$p);
    $opts += [Mcring\Memcached::OPT_CONNECT_TIMEOUT => 2000,
              Mcring\Memcached::OPT_POLL_TIMEOUT => 2000];
    if (!$m->setOptions($opts)) echo "setOptions failed\n";
    return $m;
}
$k = uniq();

echo "verified against the test CA\n";
$m = tls_client([$M::OPT_MCRING_TLS => true, $M::OPT_MCRING_TLS_CA_FILE => "$dir/ca.pem"]);
var_dump($m->set($k, ['v' => 1]), $m->get($k), $m->getResultCode() === $M::RES_SUCCESS);
var_dump($m->getOption($M::OPT_MCRING_TLS), $m->getOption($M::OPT_MCRING_TLS_CA_FILE) === "$dir/ca.pem",
         $m->getOption($M::OPT_MCRING_TLS_INSECURE), $m->getOption($M::OPT_MCRING_TLS_SERVER_NAME));

echo "mutual TLS options are taken\n";
$m = tls_client([$M::OPT_MCRING_TLS => true, $M::OPT_MCRING_TLS_CA_FILE => "$dir/ca.pem",
                 $M::OPT_MCRING_TLS_CERT_FILE => "$dir/client.pem",
                 $M::OPT_MCRING_TLS_KEY_FILE => "$dir/client.key"]);
var_dump($m->get($k));

echo "a CA that signed nothing here\n";
$m = tls_client([$M::OPT_MCRING_TLS => true, $M::OPT_MCRING_TLS_CA_FILE => "$dir/other-ca.pem"]);
var_dump($m->get($k), $m->getResultCode() === $M::RES_CONNECTION_FAILURE);

echo "a name the certificate does not have\n";
$m = tls_client([$M::OPT_MCRING_TLS => true, $M::OPT_MCRING_TLS_CA_FILE => "$dir/ca.pem",
                 $M::OPT_MCRING_TLS_SERVER_NAME => 'wrong.example']);
var_dump($m->get($k), $m->getResultCode() === $M::RES_CONNECTION_FAILURE);

echo "insecure: encrypted, nothing verified\n";
$m = tls_client([$M::OPT_MCRING_TLS => true, $M::OPT_MCRING_TLS_CA_FILE => "$dir/other-ca.pem",
                 $M::OPT_MCRING_TLS_INSECURE => true]);
var_dump($m->get($k));

echo "a CA file that does not exist\n";
$m = tls_client([$M::OPT_MCRING_TLS => true, $M::OPT_MCRING_TLS_CA_FILE => "$dir/no-such.pem"]);
var_dump($m->get($k), $m->getResultCode() !== $M::RES_SUCCESS);

echo "plain text to a TLS server fails, in time\n";
$m = tls_client([$M::OPT_CONNECT_TIMEOUT => 300, $M::OPT_POLL_TIMEOUT => 300]);
var_dump($m->get($k), $m->getResultCode() !== $M::RES_SUCCESS);

echo "a CA without the switch is refused, not ignored\n";
$m = tls_client([$M::OPT_MCRING_TLS_CA_FILE => "$dir/ca.pem"]);
var_dump($m->get($k), $m->getResultCode() !== $M::RES_SUCCESS,
         str_contains($m->getLastErrorMessage(), "nothing would be encrypted"));

echo "TLS off again: the option is a switch\n";
$m = tls_client([$M::OPT_MCRING_TLS => true, $M::OPT_MCRING_TLS_CA_FILE => "$dir/ca.pem"]);
$m->setOption($M::OPT_MCRING_TLS, false);
var_dump($m->getOption($M::OPT_MCRING_TLS));
?>
--EXPECT--
verified against the test CA
bool(true)
array(1) {
  ["v"]=>
  int(1)
}
bool(true)
bool(true)
bool(true)
bool(false)
string(0) ""
mutual TLS options are taken
array(1) {
  ["v"]=>
  int(1)
}
a CA that signed nothing here
bool(false)
bool(true)
a name the certificate does not have
bool(false)
bool(true)
insecure: encrypted, nothing verified
array(1) {
  ["v"]=>
  int(1)
}
a CA file that does not exist
bool(false)
bool(true)
plain text to a TLS server fails, in time
bool(false)
bool(true)
a CA without the switch is refused, not ignored
bool(false)
bool(true)
bool(true)
TLS off again: the option is a switch
bool(false)
