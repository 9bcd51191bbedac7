// One PHP-as-WebAssembly runtime (@php-wasm/node), booted once, serving many requests.
//
//     node wasm_driver.mjs <php version, e.g. 7.4>
//
// Speaks JSON lines: after booting it prints {"ready": true, "version": "7.4.33", "boot_ms": ...}; then
// for every request line on stdin it prints exactly one response line on stdout, in order:
//
//   {"id": 1, "op": "lint", "root": "/abs/tree", "files": ["a.php", ...]}
//     -> {"id": 1, "ok": true, "results": [{"path": "a.php", "ok": true, "message": ""}, ...], "requests": 1}
//   {"id": 2, "op": "run", "script": "/abs/x.php", "args": ["..."], "cwd": "/abs/dir"}
//     -> {"id": 2, "ok": true, "returncode": 0, "stdout": "...", "stderr": "..."}
//   {"id": 3, "op": "ping"} -> {"id": 3, "ok": true, "version": "7.4.33"}
//   a request the driver cannot serve -> {"id": n, "ok": false, "error": "..."}
//
// Lint has `php -l` semantics without a process per file: each file is compiled, never executed, with
// opcache_compile_file() (a parse or compile error fails it; so does a deprecation, as with NativePhp).
// Many files share one PHP request; a file that fails there is linted again alone in a fresh request,
// so a failure is never an artefact of its neighbours (two files declaring the same class, say).
// Host directories are mounted into the runtime's filesystem at their own paths for one request only.
// Nothing but protocol lines goes to stdout: console output of the libraries is sent to stderr.

import { createInterface } from 'node:readline';
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve as resolvePath, sep } from 'node:path';
import { pathToFileURL } from 'node:url';

const protocolOut = process.stdout.write.bind(process.stdout);
for (const name of ['log', 'info', 'warn', 'debug', 'error', 'trace']) {
    console[name] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

async function importPackage(name) {
    const base = process.env.PSP_NODE_MODULES;
    if (base) {
        const pkgDir = join(base, ...name.split('/'));
        const meta = JSON.parse(await (await import('node:fs/promises')).readFile(join(pkgDir, 'package.json'), 'utf8'));
        const entry = meta.exports?.['.']?.import ?? meta.module ?? 'index.js';
        return import(pathToFileURL(join(pkgDir, entry)).href);
    }
    return import(name);
}

const OPCACHE_DIR = '/internal/shared/opcache';
const LINT_LIST = '/internal/psp-lint-files.json';
const RUN_SPEC = '/internal/psp-run.json';
const MARK = '\u0001PSP';

// Compiles each listed file without executing it; markers delimit each file's output.
const LINT_CODE = `<?php
ini_set('display_errors', '1');
error_reporting(-1);
foreach (json_decode(file_get_contents('${LINT_LIST}'), true) as $f) {
    echo "\\n${MARK} BEGIN ", $f, "\\n";
    if (!is_file($f)) { echo "Could not open input file: ", $f, "\\n${MARK} RESULT fail\\n"; continue; }
    opcache_invalidate($f, true);
    try {
        $ok = opcache_compile_file($f);
    } catch (\\ParseError $e) {
        echo "\\nParse error: ", $e->getMessage(), " in ", $f, " on line ", $e->getLine(), "\\n";
        $ok = false;
    } catch (\\Throwable $e) {
        echo "\\nFatal error: ", $e->getMessage(), " in ", $f, " on line ", $e->getLine(), "\\n";
        $ok = false;
    }
    echo "\\n${MARK} RESULT ", $ok ? 'ok' : 'fail', "\\n";
}
echo "${MARK} DONE\\n";
`;

// Runs a script the way the CLI would: $argv/$argc, STDIN/STDOUT/STDERR, errors on stderr, no opcache.
const RUN_CODE = `<?php
ini_set('opcache.enable', '0');
ini_set('display_errors', 'stderr');
error_reporting(-1);
$__psp = json_decode(file_get_contents('${RUN_SPEC}'), true);
$argv = $__psp['argv'];
$argc = count($argv);
$_SERVER['argv'] = $argv;
$_SERVER['argc'] = $argc;
$_SERVER['SCRIPT_FILENAME'] = $_SERVER['SCRIPT_NAME'] = $_SERVER['PHP_SELF'] = $argv[0];
if (!defined('STDIN')) { define('STDIN', fopen('php://stdin', 'r')); }
if (!defined('STDOUT')) { define('STDOUT', fopen('php://stdout', 'w')); }
if (!defined('STDERR')) { define('STDERR', fopen('php://stderr', 'w')); }
chdir($__psp['cwd']);
unset($__psp);
require $argv[0];
`;

const version = process.argv[2];
if (!/^[578]\.[0-9]$/.test(version || '')) {
    process.stderr.write(`usage: node wasm_driver.mjs <php version like 8.2>, got ${JSON.stringify(version)}\n`);
    process.exit(2);
}

const started = Date.now();
const { PHP, setPhpIniEntries } = await importPackage('@php-wasm/universal');
const { loadNodeRuntime, createNodeFsMountHandler } = await importPackage('@php-wasm/node');
const php = new PHP(await loadNodeRuntime(version, { emscriptenOptions: { processId: 1 } }));
// opcache (needed by lint) only starts under a SAPI it knows; "cli" is also what scripts expect.
await php.setSapiName('cli');
await setPhpIniEntries(php, {
    html_errors: '0',
    log_errors: '0',
    display_errors: '1',
    display_startup_errors: '1',
    error_reporting: '-1',
    ignore_repeated_errors: '0',
    auto_prepend_file: null,
    'opcache.validate_timestamps': '1',
    'opcache.revalidate_freq': '0',
});

async function request(code) {
    const streamed = await php.runStream({ code });
    const [stdout, stderr, exitCode] = await Promise.all([
        streamed.stdoutText,
        streamed.stderrText,
        streamed.exitCode,
    ]);
    return { stdout, stderr, exitCode };
}

const warm = await request('<?php echo PHP_VERSION;');
const fullVersion = warm.stdout.trim();

/** The smallest set of existing host directories covering `paths` (none inside another). */
function mountRoots(paths) {
    const dirs = [];
    for (const p of paths) {
        if (!p || !isAbsolute(p) || !existsSync(p)) continue;
        dirs.push(resolvePath(statSync(p).isDirectory() ? p : dirname(p)));
    }
    const unique = [...new Set(dirs)].sort((a, b) => a.length - b.length);
    const roots = [];
    for (const d of unique) {
        if (!roots.some((r) => d === r || d.startsWith(r.endsWith(sep) ? r : r + sep))) roots.push(d);
    }
    if (roots.includes('/')) throw new Error('refusing to mount the host root directory');
    return roots;
}

async function withMounts(paths, fn) {
    const unmounts = [];
    try {
        for (const dir of mountRoots(paths)) {
            if (!php.fileExists(dir)) php.mkdirTree(dir);
            unmounts.push(await php.mount(dir, createNodeFsMountHandler(dir)));
        }
        return await fn();
    } finally {
        for (const unmount of unmounts.reverse()) {
            try {
                await unmount();
            } catch (e) {
                process.stderr.write(`unmount failed: ${e}\n`);
            }
        }
    }
}

function clearOpcacheFiles() {
    // compiled files are cached in the in-memory filesystem; drop them so memory stays flat and a
    // re-lint of a changed file at the same path always compiles it again
    if (!php.isDir(OPCACHE_DIR)) return;
    for (const entry of php.listFiles(OPCACHE_DIR)) {
        php.rmdir(`${OPCACHE_DIR}/${entry}`, { recursive: true });
    }
}

function tidy(text, root) {
    const prefix = root.endsWith('/') ? root : root + '/';
    return text
        .split('\n')
        .filter((line) => line.trim() && !line.includes('Zend OPcache could not compile file'))
        .map((line) => line.split(prefix).join(''))
        .join('\n')
        .trim();
}

/** One PHP request over `absFiles`; returns {file: {ok, text}} for those it finished, in order. */
async function lintRequest(absFiles) {
    php.writeFile(LINT_LIST, JSON.stringify(absFiles));
    const out = await request(LINT_CODE);
    clearOpcacheFiles();
    const done = new Map();
    const blocks = out.stdout.split(`\n${MARK} BEGIN `).slice(1);
    for (const block of blocks) {
        const newline = block.indexOf('\n');
        const file = block.slice(0, newline);
        const body = block.slice(newline + 1);
        const result = body.match(new RegExp(`\\n${MARK} RESULT (ok|fail)\\n`));
        if (result) {
            const text = body.slice(0, result.index);
            done.set(file, { ok: result[1] === 'ok' && !text.includes('Deprecated:'), text });
        } else {
            // the request ended inside this file (a fatal error PHP does not recover from)
            const text = body.replace(`${MARK} DONE`, '') + (out.stderr ? '\n' + out.stderr : '');
            done.set(file, { ok: false, text: text || `PHP stopped (exit ${out.exitCode})` });
        }
    }
    return done;
}

async function lint(root, files) {
    const abs = files.map((f) => (isAbsolute(f) ? f : join(root, f)));
    let requests = 0;
    const results = new Map();
    await withMounts([root, ...abs], async () => {
        let pending = abs;
        while (pending.length) {
            const done = await lintRequest(pending);
            requests += 1;
            if (done.size === 0) throw new Error(`lint request produced no output for ${pending[0]}`);
            for (const [file, r] of done) results.set(file, r);
            pending = pending.filter((f) => !done.has(f));
        }
        if (abs.length > 1) {
            for (const file of abs) {
                if (results.get(file)?.ok === false) {
                    const alone = await lintRequest([file]);
                    requests += 1;
                    if (alone.has(file)) results.set(file, alone.get(file));
                }
            }
        }
    });
    return {
        requests,
        results: files.map((rel, i) => {
            const r = results.get(abs[i]) ?? { ok: false, text: 'not linted' };
            return { path: rel, ok: r.ok, message: r.ok ? '' : tidy(r.text, root) };
        }),
    };
}

async function run(script, args, cwd) {
    const argv = [script, ...args];
    php.writeFile(RUN_SPEC, JSON.stringify({ argv, cwd }));
    return withMounts([cwd, script, ...args], async () => {
        const out = await request(RUN_CODE);
        return { returncode: out.exitCode, stdout: out.stdout, stderr: out.stderr };
    });
}

async function handle(msg) {
    if (msg.op === 'lint') return lint(msg.root, msg.files);
    if (msg.op === 'run') return run(msg.script, msg.args || [], msg.cwd);
    if (msg.op === 'ping') return { version: fullVersion };
    throw new Error(`unknown op ${JSON.stringify(msg.op)}`);
}

protocolOut(JSON.stringify({ ready: true, version: fullVersion, boot_ms: Date.now() - started }) + '\n');

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
    if (!line.trim()) continue;
    let msg;
    try {
        msg = JSON.parse(line);
    } catch (e) {
        protocolOut(JSON.stringify({ id: null, ok: false, error: `not JSON: ${e.message}` }) + '\n');
        continue;
    }
    let reply;
    try {
        reply = { id: msg.id, ok: true, ...(await handle(msg)) };
    } catch (e) {
        reply = { id: msg.id, ok: false, error: String(e?.stack || e) };
    }
    protocolOut(JSON.stringify(reply) + '\n');
}
process.exit(0);
