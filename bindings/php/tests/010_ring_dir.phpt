--TEST--
Ring directory: a client follows mcring-agent's ring, placing keys as php-memcached does, across a node addition
--SKIPIF--
<?php $need_peer = 1; include __DIR__ . '/skipif.inc';
if (!getenv('MCRING_TEST_RING_DIR')) die('skip MCRING_TEST_RING_DIR not set'); ?>
--FILE--
<?php
ob_start(); // the session settings below cannot change once output was sent
include __DIR__ . '/config.inc';
$dir = getenv('MCRING_TEST_RING_DIR');
$file = getenv('MCRING_TEST_RING_FILE');
$M = 'Mcring\Memcached';
$k = uniq();

/* Waits (bounded) until the client routes by n nodes. */
function nodes_become($m, int $n): bool {
    for ($i = 0; $i < 200; $i++) {
        $m->get('probe'); // a call is what makes a client look for a new ring
        if (count($m->getServerList()) === $n) return true;
        usleep(50000);
    }
    return false;
}

echo "-- two nodes\n";
$m = new Mcring\Memcached('ring');
var_dump($m->setOption($M::OPT_MCRING_RING_DIR, $dir), $m->getOption($M::OPT_MCRING_RING_DIR) === $dir);
var_dump(nodes_become($m, 2));
for ($i = 0; $i < 100; $i++) $m->set("$k$i", "v$i");
$peer = peer([], 2);
$found = 0;
for ($i = 0; $i < 100; $i++) $found += $peer->get("$k$i") === "v$i";
echo "php-memcached on the same two servers finds $found of 100\n";

echo "-- a third node published by the agent\n";
$all = servers();
file_put_contents("$file.tmp", implode("\n", array_map(fn($s) => "$s[0]:$s[1]", $all)) . "\n");
rename("$file.tmp", $file);
var_dump(nodes_become($m, 3));
for ($i = 0; $i < 100; $i++) $m->set("{$k}b$i", "w$i");
$peer3 = peer([], 3);
$found = 0;
for ($i = 0; $i < 100; $i++) $found += $peer3->get("{$k}b$i") === "w$i";
echo "php-memcached on the three servers finds $found of 100\n";
$same = 0;
for ($i = 0; $i < 1000; $i++) $same += $peer3->getServerByKey("x$i") == $m->getServerByKey("x$i");
echo "getServerByKey agrees for $same of 1000\n";

echo "-- mcring.ring_dir: a client without servers follows it\n";
ini_set('mcring.ring_dir', $dir);
$d = new Mcring\Memcached();
var_dump($d->get("{$k}b1"), count($d->getServerList()));

echo "-- the AWS client's dynamic mode: the endpoint is the agent's, the ring is followed\n";
$aws = new Mcring\Memcached();
var_dump($aws->setOption($M::OPT_CLIENT_MODE, $M::DYNAMIC_CLIENT_MODE));
$aws->addServer('my-cluster.cfg.use1.cache.amazonaws.com', 11211);
var_dump($aws->get("{$k}b1"), count($aws->getServerList()));
ini_set('mcring.ring_dir', '');
$aws2 = new Mcring\Memcached();
$aws2->setOption($M::OPT_CLIENT_MODE, $M::DYNAMIC_CLIENT_MODE);
$aws2->addServer('my-cluster.cfg.use1.cache.amazonaws.com', 11211);
var_dump($aws2->get('x'), $aws2->getResultCode() === $M::RES_NO_SERVERS, $aws2->getLastErrorMessage());
ini_set('mcring.ring_dir', $dir);

echo "-- sessions in the ring\n";
ini_set('session.use_cookies', 0);
ini_set('session.cache_limiter', '');
ini_set('session.save_handler', 'mcring');
ini_set('session.save_path', $dir);
$sid = 'r' . bin2hex(random_bytes(6));
session_id($sid);
session_start();
$_SESSION['x'] = 'ring';
session_write_close();
$_SESSION = [];
session_id($sid);
session_start();
$x = $_SESSION['x'];
session_write_close();
var_dump($x);

echo "-- back to two nodes\n";
file_put_contents("$file.tmp", implode("\n", array_map(fn($s) => "$s[0]:$s[1]", array_slice($all, 0, 2))) . "\n");
rename("$file.tmp", $file);
var_dump(nodes_become($m, 2));
?>
--EXPECT--
-- two nodes
bool(true)
bool(true)
bool(true)
php-memcached on the same two servers finds 100 of 100
-- a third node published by the agent
bool(true)
php-memcached on the three servers finds 100 of 100
getServerByKey agrees for 1000 of 1000
-- mcring.ring_dir: a client without servers follows it
string(2) "w1"
int(3)
-- the AWS client's dynamic mode: the endpoint is the agent's, the ring is followed
bool(true)
string(2) "w1"
int(3)
bool(false)
bool(true)
string(141) "dynamic client mode needs the ring directory of an mcring-agent following the configuration endpoint (mcring.ring_dir or OPT_MCRING_RING_DIR)"
-- sessions in the ring
string(4) "ring"
-- back to two nodes
bool(true)
