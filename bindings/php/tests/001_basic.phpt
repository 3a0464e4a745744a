--TEST--
Mcring\Memcached: storage, retrieval and their result codes
--SKIPIF--
<?php include __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
include __DIR__ . '/config.inc';
$m = mc();
$k = uniq();
$M = 'Mcring\Memcached';

echo "-- types\n";
foreach (['str' => 'hello', 'empty' => '', 'int' => -42, 'float' => 1.25,
          'true' => true, 'false' => false, 'null' => null,
          'arr' => [1, 'a' => [2]], 'obj' => (object)['x' => 1]] as $name => $v) {
    $ok = $m->set("$k$name", $v);
    $got = $m->get("$k$name");
    printf("%s: %s %s %d\n", $name, var_export($ok, true),
           $got == $v && gettype($got) === gettype($v) ? 'same' : 'DIFFERENT',
           $m->getResultCode());
}

echo "-- miss\n";
var_dump($m->get("{$k}nope"), $m->getResultCode() === $M::RES_NOTFOUND,
         $m->getResultMessage());

echo "-- getMulti\n";
$m->setMulti(["{$k}a" => 1, "{$k}b" => 'two', "{$k}7" => 7.5]);
$r = $m->getMulti(["{$k}b", "{$k}nope", "{$k}a"]);
var_dump($r === ["{$k}b" => 'two', "{$k}a" => 1], $m->getResultCode());
$r = $m->getMulti(["{$k}b", "{$k}nope", "{$k}a"], $M::GET_PRESERVE_ORDER);
var_dump(array_keys($r) === ["{$k}b", "{$k}nope", "{$k}a"], $r["{$k}nope"]);
var_dump($m->getMulti(["{$k}x", "{$k}y"]), $m->getResultCode() === $M::RES_NOTFOUND);
var_dump($m->getMulti([]), $m->getResultCode() === $M::RES_NOTFOUND);
$r = $m->getMulti(["{$k}a"], $M::GET_EXTENDED);
var_dump(array_keys($r["{$k}a"]), $r["{$k}a"]['value'], is_int($r["{$k}a"]['cas']));

echo "-- cas\n";
$e = $m->get("{$k}str", null, $M::GET_EXTENDED);
var_dump($e['value'], $e['flags']);
var_dump($m->cas($e['cas'], "{$k}str", 'v2'), $m->get("{$k}str"));
var_dump($m->cas($e['cas'], "{$k}str", 'v3'), $m->getResultCode() === $M::RES_DATA_EXISTS);
var_dump($m->cas($e['cas'], "{$k}gone", 'v3'), $m->getResultCode() === $M::RES_NOTFOUND);

echo "-- add / replace\n";
var_dump($m->add("{$k}str", 'x'), $m->getResultCode() === $M::RES_NOTSTORED);
var_dump($m->add("{$k}new", 'x'), $m->getResultCode());
var_dump($m->replace("{$k}none", 'x'), $m->getResultCode() === $M::RES_NOTSTORED);
var_dump($m->replace("{$k}new", 'y'), $m->get("{$k}new"));

echo "-- append / prepend\n";
var_dump(@$m->append("{$k}new", 'z')); // compression on: refused like php-memcached
$m->setOption($M::OPT_COMPRESSION, false);
var_dump($m->append("{$k}new", 'z'), $m->prepend("{$k}new", 'a'), $m->get("{$k}new"));
var_dump($m->append("{$k}none", 'z'), $m->getResultCode() === $M::RES_NOTSTORED);

echo "-- delete\n";
var_dump($m->delete("{$k}new"), $m->delete("{$k}new"), $m->getResultCode() === $M::RES_NOTFOUND);
var_dump($m->deleteMulti(["{$k}a", "{$k}nope"]) === ["{$k}a" => true, "{$k}nope" => $M::RES_NOTFOUND]);

echo "-- touch\n";
var_dump($m->touch("{$k}b", 100), $m->touch("{$k}nope", 100), $m->getResultCode() === $M::RES_NOTFOUND);

echo "-- increment / decrement\n";
$m->set("{$k}n", 10);
var_dump($m->increment("{$k}n"), $m->increment("{$k}n", 5), $m->decrement("{$k}n", 20));
var_dump($m->increment("{$k}nx"), $m->getResultCode() === $M::RES_NOTFOUND);
var_dump($m->increment("{$k}ny", 2, 100, 60), $m->increment("{$k}ny", 2, 100, 60));
var_dump($m->decrement("{$k}nz", 2, 100), $m->decrement("{$k}nz", 2, 100));
var_dump(@$m->increment("{$k}n", -1));
$m->set("{$k}s", 'abc');
var_dump($m->increment("{$k}s"), $m->getResultCode() === $M::RES_CLIENT_ERROR);

echo "-- getDelayed, fetch, fetchAll\n";
$m->setMulti(["{$k}d1" => 'one', "{$k}d2" => 2]);
var_dump($m->getDelayed(["{$k}d1", "{$k}nope", "{$k}d2"], true));
$r = $m->fetch();
var_dump($r['key'] === "{$k}d1", $r['value'], is_int($r['cas']), $r['flags']);
$all = $m->fetchAll();
var_dump(count($all), $all[0]['key'] === "{$k}d2", $all[0]['value']);
var_dump($m->fetch(), $m->getResultCode() === $M::RES_END);
$got = [];
$m->getDelayed(["{$k}d2", "{$k}d1"], false, function ($mc, $r) use (&$got) { $got[] = $r; });
var_dump(count($got), array_keys($got[0]), $got[1]['value'], $m->fetch());

echo "-- read-through callback\n";
var_dump($m->get("{$k}cb", function ($mc, $key, &$value, &$exp) {
    $value = "made for $key"; $exp = 10; return true; }) === "made for {$k}cb");
var_dump($m->get("{$k}cb") === "made for {$k}cb");
var_dump($m->get("{$k}cb2", function ($mc, $key, &$value) { return false; }),
         $m->getResultCode() === $M::RES_NOTFOUND, $m->get("{$k}cb2"));
?>
--EXPECT--
-- types
str: true same 0
empty: true same 0
int: true same 0
float: true same 0
true: true same 0
false: true same 0
null: true same 0
arr: true same 0
obj: true same 0
-- miss
bool(false)
bool(true)
string(9) "NOT FOUND"
-- getMulti
bool(true)
int(0)
bool(true)
NULL
array(0) {
}
bool(true)
array(0) {
}
bool(true)
array(3) {
  [0]=>
  string(5) "value"
  [1]=>
  string(3) "cas"
  [2]=>
  string(5) "flags"
}
int(1)
bool(true)
-- cas
string(5) "hello"
int(0)
bool(true)
string(2) "v2"
bool(false)
bool(true)
bool(false)
bool(true)
-- add / replace
bool(false)
bool(true)
bool(true)
int(0)
bool(false)
bool(true)
bool(true)
string(1) "y"
-- append / prepend
NULL
bool(true)
bool(true)
string(3) "ayz"
bool(false)
bool(true)
-- delete
bool(true)
bool(false)
bool(true)
bool(true)
-- touch
bool(true)
bool(false)
bool(true)
-- increment / decrement
int(11)
int(16)
int(0)
bool(false)
bool(true)
int(100)
int(102)
int(100)
int(98)
bool(false)
bool(false)
bool(true)
-- getDelayed, fetch, fetchAll
bool(true)
bool(true)
string(3) "one"
bool(true)
int(0)
int(1)
bool(true)
int(2)
bool(false)
bool(true)
int(2)
array(2) {
  [0]=>
  string(3) "key"
  [1]=>
  string(5) "value"
}
string(3) "one"
bool(false)
-- read-through callback
bool(true)
bool(true)
bool(false)
bool(true)
bool(false)
