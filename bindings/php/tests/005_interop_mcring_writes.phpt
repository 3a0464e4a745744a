--TEST--
Interop: every value kind Mcring\Memcached writes, php-memcached reads the same; flags and bytes as php-memcached's (zlib)
--SKIPIF--
<?php $need_peer = 1; include __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
include __DIR__ . '/config.inc';
include __DIR__ . '/interop.inc';
$k = uniq();
$checked = $bad = 0;
foreach (interop_option_sets() as $set => $opts) {
    $peer = peer($opts);
    $mc = mc($opts);
    // php-memcached writing zlib: the reference for the stored flags
    $zopts = $opts;
    if (!empty($opts[Memcached::OPT_COMPRESSION]))
        $zopts[Memcached::OPT_COMPRESSION_TYPE] = Memcached::COMPRESSION_ZLIB;
    $ref = peer($zopts);
    foreach (interop_values() as $vn => $v) {
        $key = $k . md5("$set/$vn");
        if (!$mc->set($key, $v)) { echo "mcring set $set $vn failed: ", $mc->getResultCode(), "\n"; continue; }
        $got = $peer->get($key, null, Memcached::GET_EXTENDED);
        $mine = $mc->get($key, null, Mcring\Memcached::GET_EXTENDED);
        [$flags, $bytes] = raw_item($key);
        $ref->set("{$key}_ref", $v);
        [$rflags, $rbytes] = raw_item("{$key}_ref");
        $checked++;
        if (!is_array($got) || show($got['value']) !== show($mine['value'])
            || $got['flags'] !== $mine['flags'] || $flags !== $rflags
            || (!is_float($v) && $bytes !== $rbytes)) {
            $bad++;
            printf("%s %s: mcring %s peer %s flags %x ref %x\n", $set, $vn,
                   show($mine['value'] ?? null), show($got['value'] ?? $got), $flags, $rflags);
        }
        if (($flags & 0x10) && !($flags & 0x20)) { $bad++; echo "$set $vn: compressed without zlib\n"; }
        if ($flags & 0x100) { $bad++; echo "$set $vn: libmcring's zstd bit\n"; }
    }
}
echo "checked $checked, bad $bad\n";
?>
--EXPECTF--
checked %d, bad 0
