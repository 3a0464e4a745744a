--TEST--
Options: setOption / getOption / setOptions, prefix, serializer, user flags, distribution, unsupported calls
--SKIPIF--
<?php include __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
include __DIR__ . '/config.inc';
include __DIR__ . '/interop.inc'; // raw_item
$M = 'Mcring\Memcached';
$m = mc();
$k = uniq();

echo "-- round trips\n";
foreach ([$M::OPT_CONNECT_TIMEOUT => 250, $M::OPT_POLL_TIMEOUT => 900,
          $M::OPT_SEND_TIMEOUT => 500000, $M::OPT_RECV_TIMEOUT => 500000,
          $M::OPT_RETRY_TIMEOUT => 5, $M::OPT_SERVER_FAILURE_LIMIT => 3,
          $M::OPT_TCP_KEEPALIVE => 1, $M::OPT_NOREPLY => 0,
          $M::OPT_AUTO_EJECT_HOSTS => 1, $M::OPT_REMOVE_FAILED_SERVERS => 1,
          $M::OPT_BINARY_PROTOCOL => 1, $M::OPT_TCP_NODELAY => 1,
          $M::OPT_COMPRESSION_TYPE => $M::COMPRESSION_ZLIB,
          $M::OPT_SERIALIZER => $M::SERIALIZER_JSON, $M::OPT_USER_FLAGS => 7,
          $M::OPT_STORE_RETRY_COUNT => 2] as $opt => $v) {
    $ok = $m->setOption($opt, $v);
    echo "$opt: ", var_export($ok, true), ' ', var_export($m->getOption($opt) == $v, true), "\n";
}
var_dump($m->getOption($M::OPT_LIBKETAMA_COMPATIBLE), $m->getOption($M::OPT_DISTRIBUTION));
var_dump($m->set("{$k}j", ['a' => 1]), $m->get("{$k}j"));
var_dump($m->get("{$k}j", null, $M::GET_EXTENDED)['flags']);

echo "-- refusals\n";
var_dump(@$m->setOption($M::OPT_SERIALIZER, 99), $m->getOption($M::OPT_SERIALIZER));
var_dump(@$m->setOption($M::OPT_USER_FLAGS, 70000), $m->getOption($M::OPT_USER_FLAGS));
var_dump($m->setOption($M::OPT_USER_FLAGS, -1), $m->getOption($M::OPT_USER_FLAGS));
var_dump($m->setOption($M::OPT_COMPRESSION_TYPE, 9));
var_dump(@$m->setOption($M::OPT_PREFIX_KEY, str_repeat('p', 129)));
var_dump(@$m->setOption($M::OPT_PREFIX_KEY, 'a b'), $m->getResultCode() === $M::RES_BAD_KEY_PROVIDED);
var_dump($m->setOption($M::OPT_DISTRIBUTION, $M::DISTRIBUTION_VIRTUAL_BUCKET), $m->getResultCode() === $M::RES_NOT_SUPPORTED);
var_dump($m->setOption($M::OPT_NUMBER_OF_REPLICAS, 2), $m->getResultCode() === $M::RES_NOT_SUPPORTED);
var_dump($m->setOption($M::OPT_HASH, $M::HASH_CRC), $m->getResultCode() === $M::RES_NOT_SUPPORTED);
var_dump(@$m->setOption(12345, 1));
var_dump(@$m->setOptions([$M::OPT_CONNECT_TIMEOUT => 100, 12345 => 1]), $m->getOption($M::OPT_CONNECT_TIMEOUT));

echo "-- a distribution mcring does not have: a notice, keys stay on ketama\n";
$m->setOption($M::OPT_DISTRIBUTION, $M::DISTRIBUTION_MODULA);
$m->setOption($M::OPT_DISTRIBUTION, 2); // libmemcached's unweighted ketama

echo "-- prefix\n";
$m = mc();
var_dump($m->setOption($M::OPT_PREFIX_KEY, "{$k}ns:"), $m->getOption($M::OPT_PREFIX_KEY));
$m->set('a', 'prefixed');
$m->setMulti(['b' => 'B']);
$plain = mc();
// stored under the prefixed key, placed by the key without it
var_dump($plain->get('a'), raw_item("{$k}ns:a")[1], $m->get('a'), $m->getMulti(['a', 'b']));
var_dump($m->increment('n', 1, 5), raw_item("{$k}ns:n")[1]);
$m->setOption($M::OPT_PREFIX_KEY, '');
var_dump($m->get('a'), $m->getOption($M::OPT_PREFIX_KEY));

echo "-- user flags travel with the value\n";
$m = mc([$M::OPT_USER_FLAGS => 65535]);
$m->set("{$k}uf", 'v');
$plain = mc();
var_dump($plain->get("{$k}uf", null, $M::GET_EXTENDED)['flags']);

echo "-- compression threshold and factor\n";
$m = mc([$M::OPT_COMPRESSION => true]);
$m->set("{$k}small", str_repeat('a', 100));
$m->set("{$k}large", str_repeat('a', 5000));
$m->set("{$k}random", random_bytes(5000));
foreach (['small', 'large', 'random'] as $n) printf("%s: %x\n", $n, raw_item("$k$n")[0]);
var_dump($m->get("{$k}large") === str_repeat('a', 5000));

echo "-- not supported\n";
foreach (['setSaslAuthData' => ['u', 'p'],
          'setBucket' => [[], null, 0], 'getAllKeys' => []] as $fn => $args) {
    $r = $m->$fn(...$args);
    echo "$fn: ", var_export($r, true), ' ', $m->getResultCode(), "\n";
}
var_dump($m->delete('k', 10), $m->getResultCode() === $M::RES_NOT_SUPPORTED);

echo "-- constants equal php-memcached's\n";
if (extension_loaded('memcached')) {
    $peer = (new ReflectionClass('Memcached'))->getConstants();
    $mine = (new ReflectionClass('Mcring\Memcached'))->getConstants();
    $diff = [];
    foreach ($peer as $name => $v) {
        if (str_starts_with($name, 'HAVE_')) continue;
        if (!array_key_exists($name, $mine) || $mine[$name] !== $v) $diff[] = $name;
    }
    echo count($peer) > 100 ? 'checked ' : 'too few ', implode(',', $diff), "\n";
} else {
    echo "checked \n";
}
?>
--EXPECTF--
-- round trips
14: true true
8: true true
19: true true
20: true true
15: true true
21: true true
32: true true
26: true true
28: true true
35: true true
18: true true
1: true true
-1004: true true
-1003: true true
-1006: true true
-1005: true true
int(1)
int(5)
bool(true)
object(stdClass)#%d (1) {
  ["a"]=>
  int(1)
}
int(7)
-- refusals
bool(false)
int(3)
bool(false)
int(7)
bool(true)
int(-1)
bool(false)
bool(false)
bool(false)
bool(true)
bool(false)
bool(true)
bool(false)
bool(true)
bool(false)
bool(true)
bool(false)
bool(false)
int(100)
-- a distribution mcring does not have: a notice, keys stay on ketama

Notice: Mcring\Memcached::setOption(): mcring places keys with libketama-compatible consistent hashing only: keys placed by this distribution will move in %s on line %d

Notice: Mcring\Memcached::setOption(): mcring places keys with libketama-compatible consistent hashing only: keys placed by this distribution will move in %s on line %d
-- prefix
bool(true)
string(%d) "%sns:"
bool(false)
string(8) "prefixed"
string(8) "prefixed"
array(2) {
  ["a"]=>
  string(8) "prefixed"
  ["b"]=>
  string(1) "B"
}
int(5)
string(1) "5"
bool(false)
string(0) ""
-- user flags travel with the value
int(65535)
-- compression threshold and factor
small: 0
large: 30
random: 0
bool(true)
-- not supported
setSaslAuthData: false 28
setBucket: false 28
getAllKeys: false 28
bool(false)
bool(true)
-- constants equal php-memcached's
checked 
