--TEST--
Ring owner: a ring directory in a parent others can write is refused unless OPT_MCRING_RING_OWNER / mcring.ring_owner names the agent's user
--SKIPIF--
<?php include __DIR__ . '/skipif.inc';
if (!getenv('MCRING_TEST_AGENT')) die('skip MCRING_TEST_AGENT not set (run run-tests.sh)');
$f = tempnam(sys_get_temp_dir(), 'uid');
$uid = fileowner($f);
unlink($f);
if ($uid !== 0) die('skip needs root: runs mcring-agent as nobody in a parent directory it can write');
if (!is_executable('/usr/bin/setpriv')) die('skip needs /usr/bin/setpriv (util-linux) to run the agent as nobody');
if (!preg_match('/^nobody:[^:]*:\d+:\d+:/', (string)shell_exec('getent passwd nobody'))) die('skip no user nobody');
?>
--FILE--
<?php
ob_start(); // the session settings below cannot change once output was sent
include __DIR__ . '/config.inc';
$M = 'Mcring\Memcached';
[, , $uid, $gid] = explode(':', trim(shell_exec('getent passwd nobody')));
$uid = (int)$uid;
$gid = (int)$gid;

/* nobody's agent makes its ring directory in a parent owned by root,
 * group nobody's, mode 0775: anyone of that group could have made it. */
$top = sys_get_temp_dir() . '/mcring-php-owner-' . bin2hex(random_bytes(4));
mkdir($top, 0755);
chmod($top, 0755);
[$h, $p] = servers()[0];
file_put_contents("$top/nodes", "$h:$p\n");
chmod("$top/nodes", 0644);
mkdir("$top/shared");
chgrp("$top/shared", $gid);
chmod("$top/shared", 0775);
$ring = "$top/shared/ring";
$agent = proc_open(
    ['/usr/bin/setpriv', "--reuid=$uid", "--regid=$gid", '--clear-groups',
     getenv('MCRING_TEST_AGENT'), '--file', "$top/nodes", '--ring-dir', $ring,
     '--interval', '0.1', '--stats-slots', '0', '--log-level', 'warning'],
    [0 => ['file', '/dev/null', 'r'], 1 => ['file', "$top/agent.log", 'w'],
     2 => ['file', "$top/agent.log", 'a']],
    $pipes);
$published = false;
for ($i = 0; $i < 200 && !$published; $i++) {
    clearstatcache();
    $published = is_file("$ring/ctl") && glob("$ring/ring.*");
    if (!$published) usleep(50000);
}
echo "-- nobody's ring\n";
var_dump($published, fileowner($ring) === $uid, fileowner("$ring/ctl") === $uid);
if (!$published) echo file_get_contents("$top/agent.log");

function follows($m): bool {
    $k = uniq();
    return $m->set($k, 'v') && $m->get($k) === 'v' && count($m->getServerList()) === 1;
}
function refusal($m): string {
    $m->get('k');
    return $m->getResultCode() . ' ' . $m->getLastErrorMessage();
}
function client(string $ring) {
    $m = new Mcring\Memcached();
    $m->setOption(Mcring\Memcached::OPT_MCRING_RING_DIR, $ring);
    return $m;
}

echo "-- no owner named: refused, with the reason\n";
$m = client($ring);
var_dump($m->getOption($M::OPT_MCRING_RING_OWNER), $m->get('k'));
echo str_replace($ring, 'RING', refusal($m)), "\n";

echo "-- OPT_MCRING_RING_OWNER: by uid, by name, in digits\n";
foreach ([$uid, 'nobody', (string)$uid] as $owner) {
    $m = client($ring);
    var_dump($m->setOption($M::OPT_MCRING_RING_OWNER, $owner),
             $m->getOption($M::OPT_MCRING_RING_OWNER) === $uid, follows($m));
}

echo "-- another owner: refused\n";
foreach ([0, 'root'] as $owner) {
    $m = client($ring);
    var_dump($m->setOption($M::OPT_MCRING_RING_OWNER, $owner), $m->get('k'));
    echo str_replace([$ring, (string)$uid], ['RING', 'NOBODY'], refusal($m)), "\n";
}

echo "-- bad values: refused by setOption, the option unchanged\n";
$m = client($ring);
$m->setOption($M::OPT_MCRING_RING_OWNER, $uid);
var_dump($m->setOption($M::OPT_MCRING_RING_OWNER, 'mcring-no-such-user'),
         $m->getResultCode() === $M::RES_INVALID_ARGUMENTS);
var_dump($m->setOption($M::OPT_MCRING_RING_OWNER, -2));
var_dump($m->setOption($M::OPT_MCRING_RING_OWNER, 4294967295));
var_dump($m->getOption($M::OPT_MCRING_RING_OWNER) === $uid, follows($m));
echo "-- -1 (or \"\", null) unsets it: refused again\n";
var_dump($m->setOption($M::OPT_MCRING_RING_OWNER, -1), $m->get('k'));
var_dump($m->setOption($M::OPT_MCRING_RING_OWNER, ''), $m->getOption($M::OPT_MCRING_RING_OWNER));

echo "-- mcring.ring_owner: the default of every ring-dir client\n";
ini_set('mcring.ring_owner', 'nobody');
var_dump(follows(client($ring)));
ini_set('mcring.ring_dir', $ring);
var_dump(follows(new Mcring\Memcached()));
ini_set('mcring.ring_dir', '');
ini_set('mcring.ring_owner', (string)$uid);
var_dump(follows(client($ring)));
ini_set('mcring.ring_owner', 'root');
$m = client($ring);
var_dump($m->get('k'));
echo str_replace([$ring, (string)$uid], ['RING', 'NOBODY'], refusal($m)), "\n";
echo "-- the object's option wins over the ini\n";
$m->setOption($M::OPT_MCRING_RING_OWNER, 'nobody');
var_dump(follows($m));
echo "-- an unknown user in the ini: the client is not built\n";
ini_set('mcring.ring_owner', 'mcring-no-such-user');
$m = client($ring);
var_dump($m->get('k'), $m->getResultCode() === $M::RES_INVALID_ARGUMENTS, $m->getLastErrorMessage());
echo "-- a server list has no ring directory: the owner plays no part\n";
$s = mc([], 1);
var_dump($s->setOption($M::OPT_MCRING_RING_OWNER, 'root'), follows($s));
ini_set('mcring.ring_owner', '');

echo "-- sessions in the ring directory: mcring.ring_owner applies\n";
ini_set('session.use_cookies', 0);
ini_set('session.cache_limiter', '');
ini_set('session.save_handler', 'mcring');
ini_set('session.save_path', $ring);
ini_set('mcring.ring_owner', 'nobody');
$sid = 'o' . bin2hex(random_bytes(6));
session_id($sid);
var_dump(session_start());
$_SESSION['x'] = 'owned';
session_write_close();
$_SESSION = [];
session_id($sid);
session_start();
$x = $_SESSION['x'] ?? null;
session_write_close();
var_dump($x);
ini_set('mcring.ring_owner', '');
session_id($sid);
var_dump(@session_start());

proc_terminate($agent);
proc_close($agent);
exec('rm -rf ' . escapeshellarg($top));
?>
--EXPECTF--
-- nobody's ring
bool(true)
bool(true)
bool(true)
-- no owner named: refused, with the reason
int(-1)
bool(false)
1 ring RING: RING: its parent (uid 0, mode 0775) lets another user create or replace the ring directory; move it under a directory only root can write (for example /run/mcring), or name the agent's user as the expected owner (ring_owner_uid, --ring-owner)
-- OPT_MCRING_RING_OWNER: by uid, by name, in digits
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
-- another owner: refused
bool(true)
bool(false)
1 ring RING: ctl is owned by uid NOBODY, expected uid 0
bool(true)
bool(false)
1 ring RING: ctl is owned by uid NOBODY, expected uid 0
-- bad values: refused by setOption, the option unchanged

Warning: Mcring\Memcached::setOption(): OPT_MCRING_RING_OWNER: no user named 'mcring-no-such-user' (a user name or uid) in %s on line %d
bool(false)
bool(true)

Warning: Mcring\Memcached::setOption(): OPT_MCRING_RING_OWNER: -2 is not a uid (0..4294967294, or -1 for none) in %s on line %d
bool(false)

Warning: Mcring\Memcached::setOption(): OPT_MCRING_RING_OWNER: 4294967295 is not a uid (0..4294967294, or -1 for none) in %s on line %d
bool(false)
bool(true)
bool(true)
-- -1 (or "", null) unsets it: refused again
bool(true)
bool(false)
bool(true)
int(-1)
-- mcring.ring_owner: the default of every ring-dir client
bool(true)
bool(true)
bool(true)
bool(false)
1 ring RING: ctl is owned by uid NOBODY, expected uid 0
-- the object's option wins over the ini
bool(true)
-- an unknown user in the ini: the client is not built
bool(false)
bool(true)
string(75) "mcring.ring_owner: no user named 'mcring-no-such-user' (a user name or uid)"
-- a server list has no ring directory: the owner plays no part
bool(true)
bool(true)
-- sessions in the ring directory: mcring.ring_owner applies
bool(true)
string(5) "owned"
bool(false)
