--TEST--
Placement: getServerByKey of 10,000 keys equals php-memcached's with OPT_LIBKETAMA_COMPATIBLE
--SKIPIF--
<?php $need_peer = 1; include __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
include __DIR__ . '/config.inc';
include __DIR__ . '/interop.inc'; // raw_item
/* No server is contacted: both clients place keys from the list alone. */
$lists = [
    'unweighted, no 11211' => [['10.0.0.1', 11212, 0], ['10.0.0.2', 11213, 0], ['10.0.0.3', 22122, 0]],
    'unweighted, 11211' => [['10.0.0.1', 11211, 0], ['10.0.0.2', 11211, 0], ['10.0.0.3', 11212, 0], ['cache-4.example', 11211, 0]],
    'weighted, no 11211' => [['10.0.0.1', 11212, 1], ['10.0.0.2', 11213, 3], ['10.0.0.3', 22122, 2]],
    'weighted, 11211' => [['10.0.0.1', 11211, 5], ['10.0.0.2', 11211, 1], ['10.0.0.3', 11300, 2]],
    'one node of ten' => array_map(fn($i) => ["192.168.1.$i", 11211, 0], range(1, 10)),
];
foreach ($lists as $name => $list) {
    $peer = new Memcached();
    $peer->setOption(Memcached::OPT_LIBKETAMA_COMPATIBLE, true);
    $peer->addServers($list);
    $mc = new Mcring\Memcached();
    $mc->addServers($list);
    $same = 0;
    $used = [];
    for ($i = 0; $i < 10000; $i++) {
        $key = "key:$i:" . md5((string)$i);
        $a = $peer->getServerByKey($key);
        $b = $mc->getServerByKey($key);
        if ($a === $b) $same++;
        $used[$b['host'] . ':' . $b['port']] = true;
    }
    printf("%s: %d of 10000 equal, %d nodes used of %d\n", $name, $same, count($used), count($list));
}

echo "-- with a prefix: placed by the key without it, as libmemcached does\n";
$list = [['10.0.0.1', 11211, 0], ['10.0.0.2', 11212, 0], ['10.0.0.3', 11213, 0]];
$peer = new Memcached();
$peer->setOption(Memcached::OPT_LIBKETAMA_COMPATIBLE, true);
$peer->setOption(Memcached::OPT_PREFIX_KEY, 'app1:');
$peer->addServers($list);
$mc = new Mcring\Memcached();
$mc->setOption(Mcring\Memcached::OPT_PREFIX_KEY, 'app1:');
$mc->addServers($list);
$same = 0;
for ($i = 0; $i < 10000; $i++) {
    $same += $peer->getServerByKey("k$i") === $mc->getServerByKey("k$i");
}
echo "prefix: $same of 10000 equal\n";

echo "-- on live servers: 300 prefixed keys written by one, all read by the other\n";
$k = uniq();
$peer = peer([Memcached::OPT_PREFIX_KEY => 'pfx:']);
$mc = mc([Mcring\Memcached::OPT_PREFIX_KEY => 'pfx:']);
$hits = $hits2 = $raw = 0;
for ($i = 0; $i < 300; $i++) {
    $peer->set("$k$i", $i);
    $hits += $mc->get("$k$i") === $i;
    $mc->set("$k{$i}b", $i);
    $hits2 += $peer->get("$k{$i}b") === $i;
    $raw += raw_item("pfx:$k$i") !== null; // the prefix is part of the stored key
}
echo "mcring read $hits, php-memcached read $hits2, stored with prefix $raw\n";
// the three servers each hold some of them
$peer2 = peer();
$nodes = [];
for ($i = 0; $i < 300; $i++) $nodes[$peer2->getServerByKey("$k$i")['port']] = 1;
echo count($nodes) == count(servers()) ? "spread over every server\n" : "NOT SPREAD\n";
?>
--EXPECT--
unweighted, no 11211: 10000 of 10000 equal, 3 nodes used of 3
unweighted, 11211: 10000 of 10000 equal, 4 nodes used of 4
weighted, no 11211: 10000 of 10000 equal, 3 nodes used of 3
weighted, 11211: 10000 of 10000 equal, 3 nodes used of 3
one node of ten: 10000 of 10000 equal, 10 nodes used of 10
-- with a prefix: placed by the key without it, as libmemcached does
prefix: 10000 of 10000 equal
-- on live servers: 300 prefixed keys written by one, all read by the other
mcring read 300, php-memcached read 300, stored with prefix 300
spread over every server
