<?php
// Every global symbol the PHP files under a folder declare, by PHP's own tokenizer, and every string literal.
$root = rtrim($argv[1], '/');
$decl = [];
$literals = [];
$files = new RecursiveIteratorIterator(new RecursiveDirectoryIterator($root, FilesystemIterator::SKIP_DOTS));
foreach ($files as $file) {
    if (substr($file, -4) !== '.php') { continue; }
    $rel = substr($file, strlen($root) + 1);
    $tokens = array_values(array_filter(token_get_all(file_get_contents($file)), static function ($t) {
        return !is_array($t) || !in_array($t[0], [T_WHITESPACE, T_COMMENT, T_DOC_COMMENT], true);
    }));
    $ns = ''; $depth = 0; $classDepth = null;
    foreach ($tokens as $i => $t) {
        if ($t === '{' || (is_array($t) && in_array($t[0], [T_CURLY_OPEN, T_DOLLAR_OPEN_CURLY_BRACES], true))) { $depth++; continue; }
        if ($t === '}') { $depth--; if ($classDepth !== null && $depth < $classDepth) { $classDepth = null; } continue; }
        if (!is_array($t)) { continue; }
        $next = $tokens[$i + 1] ?? null;
        $prev = $tokens[$i - 1] ?? null;
        if ($t[0] === T_CONSTANT_ENCAPSED_STRING) { $literals[substr($t[1], 1, -1)] = true; continue; }
        if ($t[0] === T_NAMESPACE && is_array($next) && in_array($next[0], [T_STRING, T_NAME_QUALIFIED], true)) { $ns = $next[1]; continue; }
        $named = is_array($next) && $next[0] === T_STRING;
        $qualified = static function ($name) use ($ns) { return ltrim($ns . '\\' . $name, '\\'); };
        if (in_array($t[0], [T_CLASS, T_INTERFACE, T_TRAIT], true) && $named && !(is_array($prev) && in_array($prev[0], [T_DOUBLE_COLON, T_NEW], true))) {
            $decl[] = ['class', $qualified($next[1]), $rel];
            $classDepth = $depth + 1;
        } elseif ($classDepth === null && $t[0] === T_FUNCTION && $named) {
            $decl[] = ['function', $qualified($next[1]), $rel];
        } elseif ($classDepth === null && $t[0] === T_CONST && $named) {
            $decl[] = ['constant', $qualified($next[1]), $rel];
        } elseif ($t[0] === T_STRING && strtolower($t[1]) === 'define' && $next === '(' && is_array($tokens[$i + 2]) && $tokens[$i + 2][0] === T_CONSTANT_ENCAPSED_STRING) {
            $decl[] = ['constant', substr($tokens[$i + 2][1], 1, -1), $rel];
        }
    }
}
echo json_encode(['declarations' => $decl, 'literals' => array_map('strval', array_keys($literals))]);
