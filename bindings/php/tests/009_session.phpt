--TEST--
Sessions: save_handler = mcring stores, locks and shares sessions with php-memcached's handler
--SKIPIF--
<?php $need_peer = 1; include __DIR__ . '/skipif.inc'; ?>
--INI--
session.use_cookies=0
session.use_strict_mode=0
session.cache_limiter=
mcring.sess_lock_retries=2
mcring.sess_lock_wait_min=10
mcring.sess_lock_wait_max=20
--FILE--
<?php
ob_start(); // session ini settings cannot change once output was sent
include __DIR__ . '/config.inc';
$path = implode(',', array_map(fn($s) => "$s[0]:$s[1]", servers()));
$k = 's' . bin2hex(random_bytes(6)); // a valid session id prefix

echo "-- write and read back\n";
ini_set('session.save_handler', 'mcring');
ini_set('session.save_path', $path);
session_id("{$k}one");
session_start();
$_SESSION['n'] = 42;
$_SESSION['list'] = [1, 2];
session_write_close();
$_SESSION = [];
session_id("{$k}one");
session_start();
var_dump($_SESSION);
echo "-- the lock is held while the session is open\n";
$peer_view = new Mcring\Memcached();
$peer_view->setOption(Mcring\Memcached::OPT_PREFIX_KEY, 'memc.sess.key.');
foreach (servers() as [$h, $p]) $peer_view->addServer($h, $p);
var_dump($peer_view->get("lock.{$k}one"));
session_write_close();
var_dump($peer_view->get("lock.{$k}one"), $peer_view->getResultCode() === Mcring\Memcached::RES_NOTFOUND);

echo "-- a session locked by another request cannot be opened\n";
$peer_view->add("lock.{$k}one", '1', 30);
session_id("{$k}one");
var_dump(@session_start());
$peer_view->delete("lock.{$k}one");
session_id("{$k}one");
var_dump(session_start(), $_SESSION['n']);
session_destroy();
var_dump($peer_view->get("{$k}one"), $peer_view->get("lock.{$k}one"));

echo "-- php-memcached's handler writes, mcring's reads, and back\n";
ini_set('memcached.sess_consistent_hash_type', 'ketama_weighted');
ini_set('memcached.sess_binary_protocol', 0);
ini_set('session.save_handler', 'memcached');
session_id("{$k}two");
session_start();
$_SESSION['from'] = 'php-memcached';
session_write_close();
$_SESSION = [];
ini_set('session.save_handler', 'mcring');
session_id("{$k}two");
session_start();
var_dump($_SESSION['from']);
$_SESSION['from'] = 'mcring';
session_write_close();
$_SESSION = [];
ini_set('session.save_handler', 'memcached');
session_id("{$k}two");
session_start();
var_dump($_SESSION['from']);
session_write_close();

echo "-- a ring directory that does not exist fails to open\n";
ini_set('session.save_handler', 'mcring');
ini_set('session.save_path', '/nonexistent/ring');
session_id("{$k}three");
var_dump(@session_start());
?>
--EXPECT--
-- write and read back
array(2) {
  ["n"]=>
  int(42)
  ["list"]=>
  array(2) {
    [0]=>
    int(1)
    [1]=>
    int(2)
  }
}
-- the lock is held while the session is open
string(1) "1"
bool(false)
bool(true)
-- a session locked by another request cannot be opened
bool(false)
bool(true)
int(42)
bool(false)
bool(false)
-- php-memcached's handler writes, mcring's reads, and back
string(13) "php-memcached"
string(6) "mcring"
-- a ring directory that does not exist fails to open
bool(false)
