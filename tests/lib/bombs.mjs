/*
 * bombs.mjs: hostile OTLP request bodies, each about `max` bytes once inflated, for the bounded-memory
 * checks (issue 12): the integration test that runs them against the real gateway and bench/bombs.mjs
 * that prints what each one costs. Every bomb: { name, what, json (OTLP/JSON or protobuf), gzip,
 * body() (the plain body, built when called) }.
 */

/* A body of `open` + `unit` repeated + `close`, about `size` bytes in all. */
function repeat(open, unit, close, size, sep = '') {
  const n = Math.max(1, Math.floor((size - open.length - close.length) / (unit.length + sep.length)));
  const u = Buffer.from(unit + sep);
  const body = Buffer.alloc(open.length + n * u.length - sep.length + close.length);
  let o = body.write(open);
  for (let i = 0; i < n; i++) o += u.copy(body, o, 0, i === n - 1 ? unit.length : u.length);
  body.write(close, o);
  return body;
}

/* Protobuf: a varint, and one length-delimited field. */
function varint(v) {
  const out = [];
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}
const ld = (field, payload) => Buffer.concat([varint((field << 3) | 2), varint(payload.length), payload]);

const SPAN_OPEN = '{"resourceSpans":[{"scopeSpans":[{"spans":[';
const SPAN_CLOSE = ']}]}]}';
const NOW_NS = BigInt(Date.now()) * 1000000n;
const ATTR_OPEN = `${SPAN_OPEN}{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x",` +
  `"startTimeUnixNano":"${NOW_NS}","endTimeUnixNano":"${NOW_NS + 1000000n}","attributes":[`;
const ATTR_CLOSE = `]}${SPAN_CLOSE}`;

/** The bombs for a receivers.max_request_bytes of max. json-plain-big is no bomb: 50 000 ordinary GenAI
 * spans in plain JSON (about 22 MB, whatever max is), a large request the gateway must take. */
export function bombs(max) {
  return [
  {
    name: 'json-array', what: 'gzip OTLP/JSON: an unknown field holding [0,0,0,...]', json: true, gzip: true,
    body: () => repeat('{"resourceSpans":[],"x":[', '0', ']}', max - 1024, ','),
  },
  {
    name: 'json-deep', what: 'gzip OTLP/JSON: [[[[... nested to the size limit', json: true, gzip: true,
    body: () => repeat('{"x":', '[', '', max - 1024),
  },
  {
    name: 'json-anyvalues', what: 'gzip OTLP/JSON: one attribute array of {"intValue":"0"} values', json: true, gzip: true,
    body: () => repeat(`${ATTR_OPEN}{"key":"k","value":{"arrayValue":{"values":[`, '{"intValue":"0"}', ']}}}' + ATTR_CLOSE, max - 1024, ','),
  },
  {
    name: 'json-tiny-spans', what: 'gzip OTLP/JSON: spans [{},{},...]', json: true, gzip: true,
    body: () => repeat(SPAN_OPEN, '{}', SPAN_CLOSE, max - 1024, ','),
  },
  {
    name: 'json-huge-string', what: 'gzip OTLP/JSON: one string attribute of the whole size', json: true, gzip: true,
    body: () => repeat(`${ATTR_OPEN}{"key":"gen_ai.input.messages","value":{"stringValue":"`, 'a', `"}}${ATTR_CLOSE}`, max - 1024),
  },
  {
    name: 'json-plain-big', what: 'OTLP/JSON, no gzip: 50 000 small GenAI spans (normal traffic, large)', json: true, gzip: false,
    body: () => {
      const one = (i) => `{"traceId":"${(i + 1).toString(16).padStart(32, '0')}","spanId":"${(i + 1).toString(16).padStart(16, '0')}",` +
        `"name":"chat gpt-4o","kind":3,"startTimeUnixNano":"${NOW_NS}","endTimeUnixNano":"${NOW_NS + 1000000n}",` +
        '"attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},' +
        '{"key":"gen_ai.usage.input_tokens","value":{"intValue":12}},{"key":"gen_ai.usage.output_tokens","value":{"intValue":"7"}}]}';
      const spans = [];
      for (let i = 0; i < 50000; i++) spans.push(one(i));
      return Buffer.from(SPAN_OPEN + spans.join(',') + SPAN_CLOSE);
    },
  },
  {
    name: 'pb-gzip-bomb', what: 'gzip protobuf: empty ResourceSpans repeated (0a 00 ...)', json: false, gzip: true,
    body: () => Buffer.alloc(max - 1024, Buffer.from([0x0a, 0x00])),
  },
  {
    name: 'pb-tiny-spans', what: 'gzip protobuf: one ScopeSpans of empty spans (12 00 ...)', json: false, gzip: true,
    body: () => {
      const inner = Buffer.alloc(max - 4096, Buffer.from([0x12, 0x00]));
      return ld(1, ld(2, inner));
    },
  },
  {
    name: 'pb-huge-string', what: 'gzip protobuf: one span name of the whole size', json: false, gzip: true,
    body: () => ld(1, ld(2, ld(2, ld(5, Buffer.alloc(max - 4096, 0x61))))),
  },
  {
    name: 'pb-messages-json', what: 'gzip protobuf: a GenAI span whose gen_ai.input.messages is the string [0,0,...]',
    json: false, gzip: true,
    body: () => {
      const kv = (k, v) => ld(9, Buffer.concat([ld(1, Buffer.from(k)), ld(2, ld(1, v))]));
      const fixed64 = (tag, ns) => {
        const b = Buffer.alloc(9);
        b[0] = tag;
        b.writeBigUInt64LE(ns, 1);
        return b;
      };
      const span = Buffer.concat([
        ld(1, Buffer.from('5b8efff798038103d269b633813fc60c', 'hex')), ld(2, Buffer.from('eee19b7ec3c1b174', 'hex')),
        ld(5, Buffer.from('chat gpt-4o')), fixed64(0x39, NOW_NS), fixed64(0x41, NOW_NS + 1000000n),
        kv('gen_ai.operation.name', Buffer.from('chat')), kv('gen_ai.request.model', Buffer.from('gpt-4o')),
        kv('gen_ai.input.messages', repeat('[', '0', ']', max - 4096, ',')),
      ]);
      return ld(1, ld(2, ld(2, span)));
    },
  },
  ];
}

