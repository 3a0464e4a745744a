--TEST--
getOrCompute: 32 forked workers miss one hot key, one computes it; stale and early recache; a dead winner; bad options
--SKIPIF--
<?php include __DIR__ . '/skipif.inc'; if (!function_exists('pcntl_fork')) die('skip pcntl'); ?>
--FILE--
<?php
include __DIR__ . '/config.inc';
$k = uniq();
$dir = sys_get_temp_dir() . "/mcring-lease-" . getmypid();
@mkdir($dir);

/* Forks $n workers, released together, each calling getOrCompute on
 * $key with a 200 ms computation that leaves a file behind; returns
 * [computations, values seen, longest call in s]. */
function stampede(int $n, string $key, string $value, array $opts): array {
    global $dir;
    array_map('unlink', glob("$dir/*"));
    $go = time() + 1;
    $pids = [];
    for ($i = 0; $i < $n; $i++) {
        $pid = pcntl_fork();
        if ($pid === 0) {
            $mc = mc();
            while (microtime(true) < $go) usleep(1000);
            $t0 = microtime(true);
            $v = $mc->getOrCompute($key, function ($key) use ($value, $i) {
                global $dir;
                touch("$dir/computed-$i");
                usleep(200000);
                return $value;
            }, 60, $opts);
            file_put_contents("$dir/got-$i", sprintf("%.3f %s", microtime(true) - $t0, $v));
            exit(0);
        }
        $pids[] = $pid;
    }
    foreach ($pids as $p) pcntl_waitpid($p, $st);
    $seen = [];
    $longest = 0;
    foreach (glob("$dir/got-*") as $f) {
        [$t, $v] = explode(' ', file_get_contents($f), 2);
        $seen[$v] = 1;
        $longest = max($longest, (float)$t);
    }
    ksort($seen);
    return [count(glob("$dir/computed-*")), array_keys($seen), count(glob("$dir/got-*")), $longest];
}

echo "-- a missing hot key\n";
[$computed, $seen, $answered, $longest] = stampede(32, "$k:hot", "v1", ['wait_ms' => 2000]);
var_dump($computed, $seen, $answered, $longest < 2.0 + 2.0);
$mc = mc();
var_dump($mc->get("$k:hot"));

echo "-- a value about to expire: recomputed once, early\n";
$mc->set("$k:soon", "old", 3);
[$computed, $seen, $answered] = stampede(16, "$k:soon", "new", ['recache' => 30]);
var_dump($computed, $answered, array_diff($seen, ['old', 'new']), $mc->get("$k:soon"));

echo "-- an invalidated value: served stale, recomputed once\n";
$mc->set("$k:inv", "old", 60);
var_dump($mc->invalidate("$k:inv"));
[$computed, $seen, $answered] = stampede(16, "$k:inv", "new", []);
var_dump($computed, $answered, array_diff($seen, ['old', 'new']), $mc->get("$k:inv"));
var_dump($mc->invalidate("$k:never"), $mc->getResultCode() == Memcached::RES_NOTFOUND);

echo "-- values keep their PHP type, a hit does not recompute\n";
var_dump($mc->getOrCompute("$k:arr", fn($key) => ['a' => 1, 'key' => $key]));
var_dump($mc->getOrCompute("$k:arr", fn() => 'recomputed'));

echo "-- a callback that rebuilds the client: stored through the new one\n";
var_dump($mc->getOrCompute("$k:rebuilt", function () use ($mc) {
    $mc->setOption(Memcached::OPT_RETRY_TIMEOUT, 2);
    return 'after rebuild';
}, 60), $mc->getResultCode() == Memcached::RES_SUCCESS, mc()->get("$k:rebuilt"));

echo "-- a winner that dies holds the key for its lease only\n";
// memcached's clock ticks whole seconds: a 4 s lease is held at least 3 s.
$t0 = microtime(true);
$pid = pcntl_fork();
if ($pid === 0) {
    mc()->getOrCompute("$k:orphan", function () { posix_kill(getmypid(), SIGKILL); }, 60, ['lease_ttl' => 4]);
    exit(1);
}
pcntl_waitpid($pid, $st);
var_dump(pcntl_wifsignaled($st));
var_dump($mc->getOrCompute("$k:orphan", fn() => 'mine', 60, ['wait_ms' => 100]));
while (microtime(true) - $t0 < 8 && $mc->get("$k:orphan") !== 'taken over') {
    $mc->getOrCompute("$k:orphan", fn() => 'taken over', 60, ['wait_ms' => 100]);
    usleep(100000);
}
var_dump($mc->get("$k:orphan"), microtime(true) - $t0 < 7.5);

echo "-- bad arguments\n";
var_dump(@$mc->getOrCompute("$k:x", fn() => 1, 0, ['lease_ttl' => 0]), $mc->getResultCode() == Memcached::RES_INVALID_ARGUMENTS);
var_dump(@$mc->getOrCompute("$k:x", fn() => 1, 0, ['wait_ms' => 'soon']), $mc->getResultCode() == Memcached::RES_INVALID_ARGUMENTS);
var_dump($mc->getOrCompute("bad key", fn() => 1), $mc->getResultCode() == Memcached::RES_BAD_KEY_PROVIDED);
try {
    $mc->getOrCompute("$k:x", function () { throw new RuntimeException("boom"); });
} catch (RuntimeException $e) {
    echo $e->getMessage(), "\n";
}
array_map('unlink', glob("$dir/*"));
rmdir($dir);
?>
--EXPECTF--
-- a missing hot key
int(1)
array(1) {
  [0]=>
  string(2) "v1"
}
int(32)
bool(true)
string(2) "v1"
-- a value about to expire: recomputed once, early
int(1)
int(16)
array(0) {
}
string(3) "new"
-- an invalidated value: served stale, recomputed once
bool(true)
int(1)
int(16)
array(0) {
}
string(3) "new"
bool(false)
bool(true)
-- values keep their PHP type, a hit does not recompute
array(2) {
  ["a"]=>
  int(1)
  ["key"]=>
  string(%d) "%s"
}
array(2) {
  ["a"]=>
  int(1)
  ["key"]=>
  string(%d) "%s"
}
-- a callback that rebuilds the client: stored through the new one
string(13) "after rebuild"
bool(true)
string(13) "after rebuild"
-- a winner that dies holds the key for its lease only
bool(true)
string(4) "mine"
string(10) "taken over"
bool(true)
-- bad arguments
bool(false)
bool(true)
bool(false)
bool(true)
bool(false)
bool(true)
boom
