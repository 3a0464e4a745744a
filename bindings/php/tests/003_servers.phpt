--TEST--
Servers: addServer(s) dedupe, lists, stats, version, flush, quit, persistence
--SKIPIF--
<?php include __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
include __DIR__ . '/config.inc';
$M = 'Mcring\Memcached';
[[$h1, $p1], [$h2, $p2]] = servers();

echo "-- lists\n";
$m = new Mcring\Memcached();
var_dump($m->getServerList());
var_dump($m->addServer($h1, $p1), $m->addServer($h1, $p1), $m->addServers([[$h2, $p2], [$h1, $p1], [$h2, $p2, 0]]));
var_dump(@$m->addServers([['nohost']]));
$l = $m->getServerList();
var_dump(count($l), $l[0] == ['host' => $h1, 'port' => $p1, 'type' => 'TCP']);
var_dump($m->getServerByKey('x')['weight'], in_array($m->getServerByKey('x')['port'], [$p1, $p2]));
var_dump($m->getServerByKey('bad key'), $m->getResultCode() === $M::RES_BAD_KEY_PROVIDED);
var_dump($m->resetServerList(), $m->getServerList(), $m->get('x'), $m->getResultCode() === $M::RES_NO_SERVERS);

echo "-- stats, version, flush, quit\n";
$m = mc();
$st = $m->getStats();
var_dump(count($st) === count(servers()), is_int($st["$h1:$p1"]['pid']), is_string($st["$h1:$p1"]['version']));
$items = $m->getStats('settings');
var_dump(isset($items["$h1:$p1"]['maxconns']));
$v = $m->getVersion();
var_dump(count($v) === count(servers()), (bool)preg_match('/^\d+\.\d+\.\d+/', $v["$h1:$p1"]));
$k = uniq();
$m->set("{$k}f", 1);
var_dump($m->flush(), $m->get("{$k}f"), $m->getResultCode() === $M::RES_NOTFOUND);
var_dump($m->quit(), $m->set("{$k}after", 2), $m->get("{$k}after"));

echo "-- persistence\n";
$seen = [];
$cb = function ($obj, $id) use (&$seen) { $seen[] = $id; $obj->addServer(...servers()[0]); };
$a = new Mcring\Memcached('pool', $cb);
var_dump($a->isPersistent(), $a->isPristine(), $seen);
$a->setOption($M::OPT_PREFIX_KEY, 'pp:');
$a->set('shared', 'yes');
$b = new Mcring\Memcached('pool', $cb);
var_dump($b->isPersistent(), $b->isPristine(), count($seen), $b->getOption($M::OPT_PREFIX_KEY), $b->get('shared'));
// the common mistake: addServer on every request keeps one entry
for ($i = 0; $i < 50; $i++) { $c = new Mcring\Memcached('pool'); $c->addServer(...servers()[0]); $c->get('shared'); }
var_dump(count($c->getServerList()));
$before = $m->getStats()["$h1:$p1"]['curr_connections'];
for ($i = 0; $i < 50; $i++) { $c = new Mcring\Memcached('pool'); $c->addServer(...servers()[0]); $c->get('shared'); }
var_dump($m->getStats()["$h1:$p1"]['curr_connections'] - $before);
$n = new Mcring\Memcached(null, function ($o, $id) { echo "plain callback: ", var_export($id, true), "\n"; });
var_dump($n->isPersistent(), $n->isPristine());

echo "-- connection string\n";
$c = new Mcring\Memcached(null, null, "--SERVER=$h1:$p1 --SERVER=$h2:$p2");
var_dump(count($c->getServerList()), $c->set("{$k}cs", 1), $c->get("{$k}cs"));
?>
--EXPECT--
-- lists
array(0) {
}
bool(true)
bool(true)
bool(true)
bool(true)
int(2)
bool(true)
int(0)
bool(true)
bool(false)
bool(true)
bool(true)
array(0) {
}
bool(false)
bool(true)
-- stats, version, flush, quit
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(false)
bool(true)
bool(true)
bool(true)
int(2)
-- persistence
bool(true)
bool(true)
array(1) {
  [0]=>
  string(4) "pool"
}
bool(true)
bool(false)
int(1)
string(3) "pp:"
string(3) "yes"
int(1)
int(0)
plain callback: NULL
bool(false)
bool(true)
-- connection string
int(2)
bool(true)
int(1)
