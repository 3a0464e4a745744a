<?php
/* fcgi_load.php PORT SCRIPT SECONDS KEYS — one stream of FastCGI requests
 * to php-fpm on 127.0.0.1:PORT for tools/demo_php.sh, without a process
 * per request (cgi-fcgi costs one): for SECONDS it asks for SCRIPT with
 * QUERY_STRING "op=cache&k=K" (K cycling through 1..KEYS from a random
 * start) and prints each response body's first line, or "NONE cache K"
 * when a request gets no answer. The FastCGI 1.0 records it speaks:
 * BEGIN_REQUEST (responder, no keep-alive), PARAMS, an empty STDIN; it
 * reads STDOUT records until END_REQUEST. */
[, $port, $script, $seconds, $keys] = $argv + [null, null, null, null, null];
if (!$keys) {
    fwrite(STDERR, "usage: fcgi_load.php PORT SCRIPT SECONDS KEYS\n");
    exit(2);
}

function record(int $type, string $body): string {
    return pack('CCnnCx', 1, $type, 1, strlen($body), 0) . $body;
}

function pair(string $k, string $v): string {
    $len = fn($n) => $n < 128 ? chr($n) : pack('N', $n | 0x80000000);
    return $len(strlen($k)) . $len(strlen($v)) . $k . $v;
}

function ask(int $port, string $script, string $query): ?string {
    $s = @stream_socket_client("tcp://127.0.0.1:$port", $errno, $err, 5);
    if (!$s) return null;
    stream_set_timeout($s, 20);
    $params = pair('SCRIPT_FILENAME', $script) . pair('REQUEST_METHOD', 'GET')
            . pair('QUERY_STRING', $query);
    fwrite($s, record(1, pack('nCx5', 1, 0)) . record(4, $params) . record(4, '')
             . record(5, ''));
    $out = '';
    while (strlen($h = (string)fread($s, 8)) === 8) {
        $r = unpack('Cversion/Ctype/nid/nlen/Cpad', $h);
        $body = '';
        while (strlen($body) < $r['len'] + $r['pad']) {
            $chunk = fread($s, $r['len'] + $r['pad'] - strlen($body));
            if ($chunk === false || $chunk === '') break 2;
            $body .= $chunk;
        }
        if ($r['type'] == 6) $out .= substr($body, 0, $r['len']);
        if ($r['type'] == 3) { fclose($s); return $out; }
    }
    fclose($s);
    return null;
}

$end = microtime(true) + (float)$seconds;
$k = random_int(1, (int)$keys);
while (microtime(true) < $end) {
    $k = $k % (int)$keys + 1;
    $resp = ask((int)$port, $script, "op=cache&k=$k");
    $line = null;
    if ($resp !== null) {
        $body = substr($resp, (int)strpos($resp, "\r\n\r\n") + 4);
        $line = strtok($body, "\n");
    }
    echo $line && preg_match('/^\d+ \d+ /', $line) ? $line : "NONE cache $k", "\n";
}
