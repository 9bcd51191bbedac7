<?php
namespace Magento\Framework\Component {
    final class ComponentRegistrar
    {
        const MODULE = 'module';
        /** @var array<int, array{0: string, 1: string, 2: string}> */
        public static $registered = [];

        public static function register($type, $componentName, $path)
        {
            self::$registered[] = [$type, $componentName, $path];
        }
    }
}
namespace {
    require $argv[1];
    echo json_encode(\Magento\Framework\Component\ComponentRegistrar::$registered);
}
