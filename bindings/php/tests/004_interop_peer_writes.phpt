--TEST--
Interop: every value kind php-memcached writes, Mcring\Memcached reads the same
--SKIPIF--
<?php $need_peer = 1; include __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
include __DIR__ . '/config.inc';
include __DIR__ . '/interop.inc';
$k = uniq();
$checked = $bad = 0;
$compressed = [];
foreach (interop_option_sets() as $set => $opts) {
    $peer = peer($opts);
    $mc = mc($opts);
    foreach (interop_values() as $vn => $v) {
        $key = $k . md5("$set/$vn");
        if (!$peer->set($key, $v)) { echo "peer set $set $vn failed\n"; continue; }
        $want = $peer->get($key, null, Memcached::GET_EXTENDED);
        $got = $mc->get($key, null, Mcring\Memcached::GET_EXTENDED);
        [$flags] = raw_item($key);
        if ($flags & 0x10) $compressed[$flags & 0x60] = true;
        $checked++;
        if (!is_array($got) || show($got['value']) !== show($want['value'])
            || $got['flags'] !== $want['flags'] || $got['cas'] !== $want['cas']) {
            $bad++;
            echo "$set $vn: peer ", show($want['value'] ?? null), " mcring ",
                 show($got['value'] ?? $got), " rc ", $mc->getResultCode(), "\n";
        }
    }
    // getMulti reads the same
    $keys = [];
    foreach (interop_values() as $vn => $v) $keys[] = $k . md5("$set/$vn");
    $a = $peer->getMulti($keys); $b = $mc->getMulti($keys);
    ksort($a); ksort($b); // php-memcached returns keys in arrival order
    if (array_map('show', $a) !== array_map('show', $b)) { $bad++; echo "$set: getMulti differs\n"; }
}
echo "checked $checked, bad $bad\n";
ksort($compressed);
echo "compression seen: ", implode(',', array_map('dechex', array_keys($compressed))), "\n";
?>
--EXPECTF--
checked %d, bad 0
compression seen: 20,40
