<?php
// Loads the class files of several plugin trees into this one process, tree by tree, and reports what each
// declared, its string class constants and the lock name its LockInterface implementation uses.
// Platform classes a plugin extends or implements are not installed here: an autoloader makes an empty
// stand-in of the right kind for each (interface for *Interface, trait for *Trait, else an abstract class).
error_reporting(-1);
$errors = [];
set_error_handler(static function ($no, $msg, $file, $line) use (&$errors) { $errors[] = $msg . ' at ' . $file . ':' . $line; return true; });
$cfg = json_decode(file_get_contents($argv[1]), true);
foreach ($cfg['define'] as $name => $value) { if (!defined($name)) { define($name, $value); } }
$ours = [];
foreach ($cfg['trees'] as $tree) { foreach ($tree['classes'] as $class => $file) { $ours[strtolower($class)] = $file; } }
$standins = [];
spl_autoload_register(static function ($class) use (&$ours, &$standins) {
    $class = ltrim($class, '\\');
    if (isset($ours[strtolower($class)])) { require_once $ours[strtolower($class)]; return; }
    $at = strrpos($class, '\\');
    $short = $at === false ? $class : substr($class, $at + 1);
    $kind = preg_match('/Interface$/', $short) ? 'interface' : (preg_match('/Trait$/', $short) ? 'trait' : 'abstract class');
    eval(($at === false ? '' : 'namespace ' . substr($class, 0, $at) . '; ') . $kind . ' ' . $short . ' {}');
    $standins[strtolower($class)] = true;
});
$declared = static function () { return array_merge(get_declared_classes(), get_declared_interfaces(), get_declared_traits()); };
$out = ['trees' => []];
foreach ($cfg['trees'] as $tree) {
    $before = $declared();
    foreach ($tree['classes'] as $class => $file) { require_once $file; }
    $new = array_values(array_filter(array_diff($declared(), $before), static function ($c) use (&$standins) { return !isset($standins[strtolower($c)]); }));
    $constants = [];
    $locks = [];
    foreach ($new as $class) {
        $r = new ReflectionClass($class);
        foreach ($r->getReflectionConstants() as $constant) {
            try { $value = $constant->getValue(); } catch (Throwable $e) { continue; }
            if (is_string($value) || (is_array($value) && $value && array_filter($value, 'is_string') === $value)) { $constants[$class . '::' . $constant->getName()] = $value; }
        }
        if ($r->isInstantiable() && $r->implementsInterface($tree['lock_interface']) && $r->hasMethod('key')) {
            $key = $r->getMethod('key');
            $key->setAccessible(true);
            $locks[] = $key->invoke($r->newInstanceWithoutConstructor(), 'payment:pay_1');
        }
    }
    $out['trees'][] = ['classes' => $new, 'constants' => $constants, 'locks' => $locks];
}
$out['errors'] = $errors;
echo json_encode($out);
