/**
 * Contract harness for JavaScript cores: executes a rendered plugin's core ES module against the vectors
 * verify/contract/cases.py builds, exactly as php/contract_harness.php does for PHP cores.
 *
 *     node contract_harness.mjs <vectors.json> <plugin root>
 *
 * It imports the module named by vectors.bootstrap[0] (relative to the plugin root), runs every case and
 * prints exactly one JSON document on stdout, in the PHP harness's shape:
 *
 *     {"runtime": "node 20.x", "mode": "contract", "bootstrap": {...case...}, "cases": {"<id>": {...}},
 *      "fatal": null, "complete": true}
 *
 * where a case is {"value": <what the core returned>, "exception": null|"Class: message",
 * "errors": [process warnings raised while it ran], "output": "<stray stdout output>"}. The harness
 * judges nothing: verify/contract/cases.py compares the values with what Python expects.
 *
 * The core must compare MACs with `crypto.timingSafeEqual` called on the default export of node:crypto
 * (expected MAC first): the harness observes that call, as the PHP harness observes hash_equals.
 * Only Node's built-in modules are used.
 */

import crypto from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const realWrite = process.stdout.write.bind(process.stdout);
const documentOut = {
  runtime: 'node ' + process.versions.node,
  mode: null,
  bootstrap: null,
  cases: {},
  fatal: null,
  complete: false,
};
let printed = false;
let caseErrors = [];
let caseOutput = '';
const timingSafeEqualCalls = [];

function emit() {
  if (printed) {
    return;
  }
  printed = true;
  process.stdout.write = realWrite;
  realWrite(JSON.stringify(documentOut) + '\n');
}

process.on('warning', (warning) => {
  caseErrors.push(`Warning: ${warning.name}: ${warning.message}`);
});
process.on('uncaughtException', (error) => {
  documentOut.fatal = describe(error);
  emit();
  process.exit(0);
});
process.on('unhandledRejection', (reason) => {
  documentOut.fatal = 'unhandled rejection: ' + describe(reason);
  emit();
  process.exit(0);
});
process.on('exit', () => {
  if (!printed) {
    documentOut.fatal = 'the harness stopped early (process.exit called by the code under test?)';
    emit();
  }
});

function describe(error) {
  if (error instanceof Error) {
    const name = error.constructor && error.constructor.name ? error.constructor.name : 'Error';
    return `${name}: ${error.message}`;
  }
  return String(error);
}

function settle() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Run one case: its value, exception, warnings and stray output are recorded under `id`. */
async function run(id, fn) {
  caseErrors = [];
  caseOutput = '';
  process.stdout.write = (chunk, ...rest) => {
    caseOutput += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    const callback = rest.find((r) => typeof r === 'function');
    if (callback) {
      callback();
    }
    return true;
  };
  let value = null;
  let exception = null;
  try {
    value = await fn();
  } catch (error) {
    exception = describe(error);
  }
  await settle(); // warnings are emitted on a later tick
  process.stdout.write = realWrite;
  const record = { value: value === undefined ? null : value, exception, errors: caseErrors, output: caseOutput };
  if (id === 'bootstrap') {
    documentOut.bootstrap = record;
  } else {
    documentOut.cases[id] = record;
  }
  caseErrors = [];
  return value;
}

const [vectorsPath, rootArg] = process.argv.slice(2);
if (!vectorsPath || !rootArg) {
  process.stderr.write('usage: node contract_harness.mjs <vectors.json> <plugin root>\n');
  process.exit(2);
}
const vectors = JSON.parse(readFileSync(vectorsPath, 'utf8'));
const root = realpathSync(rootArg);
documentOut.mode = vectors.mode;

// A spy on crypto.timingSafeEqual: the core calls it on the default export, so the spy sees the call.
const originalTimingSafeEqual = crypto.timingSafeEqual;
crypto.timingSafeEqual = function spiedTimingSafeEqual(a, b) {
  const text = (v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
  timingSafeEqualCalls.push([text(a), text(b)]);
  return originalTimingSafeEqual(a, b);
};

let core = null;
await run('bootstrap', async () => {
  const files = [];
  for (const rel of vectors.bootstrap) {
    let resolved;
    try {
      resolved = realpathSync(path.join(root, rel));
    } catch {
      throw new Error('bootstrap module missing: ' + rel);
    }
    if (!resolved.startsWith(root + path.sep)) {
      throw new Error('bootstrap module outside the plugin: ' + rel);
    }
    core = { ...(core || {}), ...(await import(pathToFileURL(resolved).href)) };
    files.push(rel);
  }
  const missing = vectors.expect_classes.filter((name) => !core || typeof core[name] === 'undefined');
  return { files, missing };
});

const loaded = documentOut.bootstrap && documentOut.bootstrap.value;
if (!loaded || loaded.missing.length > 0) {
  documentOut.complete = true;
  emit();
  process.exit(0);
}

if (vectors.mode === 'values') {
  await run('values', () => core.ClientInfo.values());
  documentOut.complete = true;
  emit();
  process.exit(0);
}

const { PspException } = core;

/** The PSP as the processor sees it: payments by id, with a call log. */
class ContractFakePsp {
  constructor() {
    this.payments = new Map();
    this.calls = [];
  }

  async getPayment(paymentId) {
    this.calls.push(paymentId);
    if (!this.payments.has(paymentId)) {
      throw new PspException('payment not found: ' + paymentId, 404, 'contract');
    }
    const payment = this.payments.get(paymentId);
    if (payment === null) {
      throw new PspException('PSP unreachable', 0, 'contract');
    }
    return payment;
  }

  lastCorrelationId() {
    return this.calls.length === 0 ? '' : 'corr:' + this.calls[this.calls.length - 1];
  }
}

/** Orders in memory: canonical status, processed events and every apply() call. */
class ContractMemoryStore {
  constructor() {
    this.orders = new Map();
    this.applied = [];
    this.terms = new Map();
    this.held = [];
  }

  async getPaymentTerms(orderRef) {
    return this.terms.has(orderRef) ? this.terms.get(orderRef) : { amount: 0, currency: '', payment_ids: [] };
  }

  async hold(orderRef, resultName, eventId, detail) {
    this.held.push([orderRef, resultName, eventId, detail && detail.correlation_id ? String(detail.correlation_id) : '']);
    const order = this.orders.get(orderRef) || { status: null, events: [] };
    order.events.push(eventId);
    this.orders.set(orderRef, order);
  }

  async exists(orderRef) {
    return this.orders.has(orderRef);
  }

  async getStatus(orderRef) {
    return this.orders.has(orderRef) ? this.orders.get(orderRef).status : null;
  }

  async hasProcessedEvent(orderRef, eventId) {
    return this.orders.has(orderRef) && this.orders.get(orderRef).events.includes(eventId);
  }

  async apply(orderRef, status, platformState, eventId) {
    this.applied.push([orderRef, status, platformState, eventId]);
    const order = this.orders.get(orderRef) || { status: null, events: [] };
    order.status = status;
    order.events.push(eventId);
    this.orders.set(orderRef, order);
  }

  statuses() {
    return Object.fromEntries([...this.orders].map(([ref, order]) => [ref, order.status]));
  }
}

/** Locks in memory; names in heldElsewhere belong to "another process". */
class ContractMemoryLock {
  constructor() {
    this.heldElsewhere = [];
    this.held = new Set();
    this.log = [];
  }

  async acquire(name, timeoutSeconds) {
    this.log.push('acquire ' + name);
    if (this.heldElsewhere.includes(name) || this.held.has(name)) {
      return false;
    }
    this.held.add(name);
    return true;
  }

  async release(name) {
    this.log.push('release ' + name);
    this.held.delete(name);
  }
}

/** Records requests instead of sending them; answers from a queue. */
class ContractRecordingTransport {
  constructor() {
    this.requests = [];
    this.responses = [];
  }

  async request(method, url, headers, body) {
    this.requests.push({ method, url, headers: { ...headers }, body: body === undefined ? null : body });
    const response = this.responses.shift();
    if (response === undefined) {
      throw new PspException('no canned response left', 0, 'contract');
    }
    return response;
  }
}

// --- signatures ------------------------------------------------------------------------------------

const { Signature, StatusMap, WebhookProcessor, PspClient, Health } = core;
for (const c of vectors.sign) {
  await run('sign:' + c.name, () => Signature.sign(c.secret, c.timestamp, c.body));
}
for (const c of vectors.verify) {
  await run('verify:' + c.name, () => Signature.verify(c.secret, c.header, c.body, c.now, c.tolerance));
}
for (const c of vectors.constant_time) {
  await run('constant_time:' + c.name, () => {
    timingSafeEqualCalls.length = 0;
    const verdict = Signature.verify(c.secret, c.header, c.body, c.now, c.tolerance);
    return { verdict, hash_equals_calls: [...timingSafeEqualCalls] };
  });
}

// --- status map and state machine ------------------------------------------------------------------

for (const status of vectors.statuses) {
  await run('to_platform:' + status, () => StatusMap.toPlatform(status));
}
await run('to_platform_unknown', () => {
  const out = {};
  for (const status of vectors.not_statuses) {
    try {
      out[status] = 'returned ' + JSON.stringify(StatusMap.toPlatform(status));
    } catch (error) {
      out[status] = error instanceof RangeError ? 'rejected' : 'threw ' + describe(error);
    }
  }
  return out;
});
await run('is_canonical', () => {
  const out = {};
  for (const status of [...vectors.statuses, ...vectors.not_statuses]) {
    out[status] = StatusMap.isCanonical(status);
  }
  return out;
});
for (const from of [null, ...vectors.statuses, ...vectors.not_statuses]) {
  await run('transitions:' + (from === null ? 'null' : from), () => {
    const out = {};
    for (const to of [...vectors.statuses, ...vectors.not_statuses]) {
      out[to] = StatusMap.canTransition(from, to);
    }
    return out;
  });
}

// --- webhook scenarios -----------------------------------------------------------------------------

for (const scenario of vectors.webhooks) {
  await run('webhook:' + scenario.name, async () => {
    const psp = new ContractFakePsp();
    const store = new ContractMemoryStore();
    const lock = new ContractMemoryLock();
    for (const [ref, status] of Object.entries(scenario.orders)) {
      store.orders.set(ref, { status, events: [] });
    }
    for (const [ref, terms] of Object.entries(scenario.terms || {})) {
      store.terms.set(ref, terms);
    }
    lock.heldElsewhere = scenario.held_locks;
    const processor = new WebhookProcessor(psp, store, lock, scenario.secret, scenario.tolerance);
    const steps = [];
    for (const step of scenario.steps) {
      for (const [paymentId, payment] of Object.entries(step.psp)) {
        psp.payments.set(paymentId, payment);
      }
      const callsBefore = psp.calls.length;
      const locksBefore = lock.log.length;
      let result = null;
      let exception = null;
      try {
        result = await processor.handle(step.body, step.header, step.now);
      } catch (error) {
        exception = error && error.constructor ? error.constructor.name : 'Error';
      }
      steps.push({
        result,
        exception,
        psp_calls: psp.calls.slice(callsBefore),
        locks: lock.log.slice(locksBefore),
        held_after: [...lock.held],
        statuses: store.statuses(),
        applied: store.applied.map((entry) => [...entry]),
        held: store.held.map((entry) => [...entry]),
      });
    }
    return steps;
  });
}

// --- PSP client ------------------------------------------------------------------------------------

const cv = vectors.client;
await run('client:get_payment', async () => {
  const transport = new ContractRecordingTransport();
  transport.responses = [
    { status: 200, body: cv.payment_json },
    { status: 200, body: cv.payment_json },
  ];
  const client = new PspClient(cv.api_base, cv.api_key, transport, 'ContractHarness/1.0');
  const first = await client.getPayment(cv.payment_id);
  const second = await client.getPayment(cv.payment_id);
  return { returned: [first, second], requests: transport.requests };
});
await run('client:create_payment', async () => {
  const transport = new ContractRecordingTransport();
  transport.responses = [{ status: 201, body: cv.created_json }];
  const client = new PspClient(cv.api_base, cv.api_key, transport, '');
  const created = await client.createPayment(cv.create_payload, cv.idempotency_key);
  return { returned: created, requests: transport.requests };
});

async function failingCall(responses) {
  const transport = new ContractRecordingTransport();
  transport.responses = responses;
  const client = new PspClient(cv.api_base, cv.api_key, transport, '');
  try {
    await client.getPayment(cv.payment_id);
    return { thrown: null };
  } catch (error) {
    const sent = transport.requests[0] ? transport.requests[0].headers['X-Correlation-ID'] : null;
    return {
      thrown: error && error.constructor ? error.constructor.name : String(error),
      is_psp_exception: error instanceof PspException,
      correlation_id: error && typeof error.getCorrelationId === 'function' ? error.getCorrelationId() : null,
      sent_correlation_id: sent === undefined ? null : sent,
    };
  }
}
await run('client:http_error', () => failingCall([{ status: 503, body: '{"error":"maintenance"}' }]));
await run('client:transport_failure', () => failingCall([]));
await run('client:https_only', () => {
  const out = {};
  for (const base of cv.refused_bases) {
    try {
      new PspClient(base, cv.api_key, new ContractRecordingTransport(), '');
      out[base] = 'accepted';
    } catch (error) {
      out[base] = error instanceof RangeError ? 'refused' : 'threw ' + describe(error);
    }
  }
  return out;
});

// --- the PSP API contract: every client method, the webhook declaration -------------------------------

/** Answers like the PSP would: the contract's example answer of the operation a request matches. */
class ContractRoutingTransport {
  constructor(api) {
    this.api = api;
    this.requests = [];
  }

  async request(method, url, headers, body) {
    this.requests.push({ method, url, headers: { ...headers }, body: body === undefined ? null : body });
    const base = this.api.api_base.replace(/\/+$/, '') + '/';
    if (url.startsWith(base)) {
      const segments = url.slice(base.length).split('?')[0].replace(/^\/+|\/+$/g, '').split('/');
      for (const route of this.api.routes) {
        if (route.method !== method || route.segments.length !== segments.length) {
          continue;
        }
        if (route.segments.every((want, i) => want === null || want === segments[i])) {
          return { status: route.status, body: route.body };
        }
      }
    }
    return this.api.not_found;
  }
}

/** A method's parameters from its source: [{name, optional}] (plain and defaulted parameters only). */
function parameterList(fn) {
  const source = Function.prototype.toString.call(fn);
  const open = source.indexOf('(');
  let depth = 0;
  let close = open;
  for (let i = open; i < source.length; i += 1) {
    depth += source[i] === '(' ? 1 : source[i] === ')' ? -1 : 0;
    if (depth === 0) {
      close = i;
      break;
    }
  }
  return source
    .slice(open + 1, close)
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => ({ name: part.split('=')[0].trim(), optional: part.includes('=') }));
}

// Every public method of the client, called with the contract's values for its parameters (by name; the
// one left over gets the request body). verify/contract/api.py judges each request it sent.
if (vectors.api) {
  const api = vectors.api;
  await run('client:operations', async () => {
    const out = {};
    const proto = PspClient.prototype;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const descriptor = Object.getOwnPropertyDescriptor(proto, name);
      if (name === 'constructor' || typeof descriptor.value !== 'function') {
        continue;
      }
      const values = api.operations[name] || api.defaults;
      const args = [];
      const params = [];
      const unresolved = [];
      let bodyUsed = false;
      for (const parameter of parameterList(descriptor.value)) {
        params.push(parameter.name);
        if (Object.prototype.hasOwnProperty.call(values.args, parameter.name)) {
          args.push(values.args[parameter.name]);
        } else if (!bodyUsed && values.body !== null && typeof values.body === 'object') {
          args.push(values.body);
          bodyUsed = true;
        } else if (!parameter.optional) {
          unresolved.push(parameter.name);
        } else {
          break;
        }
      }
      const record = { params, unresolved, requests: [], returned: null, exception: null };
      if (unresolved.length === 0) {
        const transport = new ContractRoutingTransport(api);
        const client = new PspClient(cv.api_base, cv.api_key, transport, '');
        try {
          const returned = await descriptor.value.apply(client, args);
          record.returned = returned === undefined ? null : returned;
        } catch (error) {
          record.exception = describe(error);
        }
        record.requests = transport.requests;
      }
      out[name] = record;
    }
    return out;
  });
}

await run('webhook:declaration', () => ({
  payload_fields: WebhookProcessor.PAYLOAD_FIELDS === undefined ? null : WebhookProcessor.PAYLOAD_FIELDS,
  signature_header: WebhookProcessor.SIGNATURE_HEADER,
}));

// --- IBAN and BIC ---------------------------------------------------------------------------------

if (vectors.bank_ids) {
  const { BankAccount } = core;
  for (const value of vectors.bank_ids.iban) {
    await run('iban:' + value, () => ({ problem: BankAccount.ibanProblem(value), normalized: BankAccount.normalizeIban(value) }));
  }
  for (const value of vectors.bank_ids.bic) {
    await run('bic:' + value, () => ({ problem: BankAccount.bicProblem(value), normalized: BankAccount.normalizeBic(value) }));
  }
  for (const c of vectors.bank_ids.debtor) {
    await run('debtor:' + c.name, () => BankAccount.checkDebtor(c.iban, c.bic, c.required));
  }
}

// --- the createPayment body: PaymentRequest.create with the contract's example values ----------------

if (vectors.payment_request) {
  const { PaymentRequest } = core;
  for (const c of vectors.payment_request) {
    // Parameters by name (the request's fields in camelCase); a required one the example lacks gets ''
    // so the body is still built and judged, and is reported unresolved.
    await run('payment_request:' + c.name, () => {
      const args = [];
      const unresolved = [];
      for (const parameter of parameterList(PaymentRequest.create)) {
        if (Object.prototype.hasOwnProperty.call(c.args, parameter.name)) {
          args.push(c.args[parameter.name]);
        } else if (parameter.optional) {
          args.push(undefined);
        } else {
          unresolved.push(parameter.name);
          args.push('');
        }
      }
      return { unresolved, body: PaymentRequest.create(...args) };
    });
  }
}

// --- health ----------------------------------------------------------------------------------------

await run('health', () => Health.report());

documentOut.complete = true;
emit();
