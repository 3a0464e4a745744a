--TEST--
Errors: dead node, silent node, bad key, too big: the right result codes, no hang
--SKIPIF--
<?php include __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
include __DIR__ . '/config.inc';
$M = 'Mcring\Memcached';

echo "-- dead node\n";
[$h, $p] = dead_server();
$m = new Mcring\Memcached();
$m->addServer($h, $p);
$m->setOption($M::OPT_SERVER_FAILURE_LIMIT, 2);
$m->setOption($M::OPT_RETRY_TIMEOUT, 60);
var_dump($m->set('k', 'v'), $m->getResultCode() === $M::RES_CONNECTION_FAILURE,
         $m->getResultMessage());
var_dump($m->get('k'), $m->getResultCode() === $M::RES_CONNECTION_FAILURE);
// after the failure limit the node is marked down: fails at once
var_dump($m->get('k'), $m->getResultCode() === $M::RES_SERVER_TEMPORARILY_DISABLED);
var_dump($m->getStats(), $m->getVersion(), $m->flush());

echo "-- one dead node among live ones: only its keys fail\n";
$m = mc();
$m->addServer($h, $p);
$keys = [];
for ($i = 0; $i < 60; $i++) $keys[] = "dead$i";
$dead = $live = 0;
foreach ($keys as $key) {
    $s = $m->getServerByKey($key);
    $s['port'] == $p ? $dead++ : $live++;
}
$m->setMulti(array_fill_keys($keys, 1));
var_dump($m->getResultCode() !== $M::RES_SUCCESS);
$r = $m->getMulti($keys);
var_dump(count($r) === $live, $m->getResultCode() === $M::RES_SOME_ERRORS, $dead > 0);

echo "-- a node that accepts and never answers: a timeout\n";
$srv = stream_socket_server('tcp://127.0.0.1:0');
[$sh, $sp] = explode(':', stream_socket_get_name($srv, false));
$m = new Mcring\Memcached();
$m->addServer($sh, (int)$sp);
$m->setOption($M::OPT_POLL_TIMEOUT, 300);
var_dump($m->get('k'), $m->getResultCode() === $M::RES_TIMEOUT, $m->getResultMessage());
var_dump($m->set('k', 'v'), $m->getResultCode() === $M::RES_TIMEOUT);
fclose($srv);

echo "-- bad keys\n";
$m = mc();
foreach (['', 'a b', "a\nb", "tab\t", str_repeat('x', 251), "\x7f"] as $bad) {
    $r1 = $m->set($bad, 1); $c1 = $m->getResultCode();
    $r2 = $m->get($bad); $c2 = $m->getResultCode();
    echo json_encode([$r1, $c1, $r2, $c2]), "\n";
}
var_dump($m->getMulti(['ok', 'not ok']), $m->getResultCode() === $M::RES_BAD_KEY_PROVIDED);
var_dump($m->set(str_repeat('x', 250), 1), $m->checkKey('a b'), $m->checkKey('ab'));
$m->setOption($M::OPT_PREFIX_KEY, str_repeat('p', 10));
var_dump($m->set(str_repeat('x', 245), 1), $m->getResultCode() === $M::RES_BAD_KEY_PROVIDED);

echo "-- too big\n";
$m = mc([$M::OPT_COMPRESSION => false]);
var_dump($m->set('big', random_bytes(2 * 1024 * 1024)), $m->getResultCode() === $M::RES_E2BIG,
         $m->getResultMessage());
var_dump($m->setMulti(['big1' => random_bytes(2 * 1024 * 1024)]), $m->getResultCode() === $M::RES_E2BIG);
var_dump($m->set('fine', 'v'), $m->getResultCode());

echo "-- no servers\n";
$m = new Mcring\Memcached();
var_dump($m->get('k'), $m->getResultCode() === $M::RES_NO_SERVERS, $m->getResultMessage());

echo "-- a value it cannot decode\n";
$m = mc();
$k = uniq();
// type 15 is not a php-memcached type
$raw = new Mcring\Memcached();
foreach (servers() as [$sh, $sp]) { $s = fsockopen($sh, $sp); fwrite($s, "set {$k}x 15 0 1\r\nx\r\n"); fgets($s); }
var_dump(@$m->get("{$k}x"), $m->getResultCode() === $M::RES_PAYLOAD_FAILURE);
?>
--EXPECT--
-- dead node
bool(false)
bool(true)
string(18) "CONNECTION FAILURE"
bool(false)
bool(true)
bool(false)
bool(true)
bool(false)
bool(false)
bool(false)
-- one dead node among live ones: only its keys fail
bool(true)
bool(true)
bool(true)
bool(true)
-- a node that accepts and never answers: a timeout
bool(false)
bool(true)
string(18) "A TIMEOUT OCCURRED"
bool(false)
bool(true)
-- bad keys
[false,33,false,33]
[false,33,false,33]
[false,33,false,33]
[false,33,false,33]
[false,33,false,33]
[false,33,false,33]
bool(false)
bool(true)
bool(true)
bool(false)
bool(true)
bool(false)
bool(true)
-- too big
bool(false)
bool(true)
string(12) "ITEM TOO BIG"
bool(false)
bool(true)
bool(true)
int(0)
-- no servers
bool(false)
bool(true)
string(18) "NO SERVERS DEFINED"
-- a value it cannot decode
bool(false)
bool(true)
