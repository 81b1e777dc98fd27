// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Generates request-fingerprint-vectors.json: the published test vectors for the idempotency
// fingerprint of DECISIONS.md §4, computed independently of the C code with Node's crypto and
// the RFC 8785 reference implementation (npm package "canonicalize"):
//
//   mkdir /tmp/vecgen && cd /tmp/vecgen && npm install canonicalize
//   node tests/data/gen-request-fingerprint-vectors.mjs \
//           /tmp/vecgen/node_modules/canonicalize/lib/canonicalize.js \
//           >tests/data/request-fingerprint-vectors.json
//
// Without the argument the module is imported as "canonicalize", resolved the normal way.
//
// fingerprint = SHA-256("1" 0x00 kind 0x00 ref 0x00 reply_to_or_empty 0x00 priority 0x00
//                       meta_jcs 0x00 body_hash)
// priority defaults to "next"; meta_jcs is "" for absent, null and {} meta; body_hash is the
// lowercase hex SHA-256 of the UTF-8 body.
//
// A vector's meta is written into the file as the literal JSON text given below (rawMeta), so
// number spellings like 1.50, 1E2 or -0.0 reach the implementation under test unchanged.

import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const modulePath = process.argv[2];
const { default: canonicalize } = await import(modulePath ? pathToFileURL(resolve(modulePath)).href : 'canonicalize');

const sha256hex = (s) => createHash('sha256').update(Buffer.from(s, 'utf8')).digest('hex');

const ALICE = sha256hex('claudemesh test peer alice');
const BOB = sha256hex('claudemesh test peer bob');

function assert(cond, what) {
        if (!cond)
                throw new Error(`assertion failed: ${what}`);
}

function isEmptyMeta(meta) {
        return meta === undefined || meta === null ||
                (typeof meta === 'object' && !Array.isArray(meta) && Object.keys(meta).length === 0);
}

function fingerprint(input) {
        for (const s of [input.kind, input.ref, input.reply_to ?? '', input.priority ?? '', input.body])
                assert(s.isWellFormed(), 'well-formed strings');
        const metaJcs = isEmptyMeta(input.meta) ? '' : canonicalize(input.meta);
        const fields = [
                '1',
                input.kind,
                input.ref,
                input.reply_to ?? '',
                input.priority ?? 'next',
                metaJcs,
                sha256hex(input.body),
        ];
        const parts = [];
        fields.forEach((f, i) => {
                parts.push(Buffer.from(f, 'utf8'));
                if (i < fields.length - 1)
                        parts.push(Buffer.from([0]));
        });
        return { metaJcs, hex: createHash('sha256').update(Buffer.concat(parts)).digest('hex') };
}

const dm = (extra) => ({ kind: 'dm', ref: ALICE, body: 'hello', ...extra });

// [name, input]; input.rawMeta is JSON text, parsed here and copied verbatim into the file.
const vectors = [
        ['dm-minimal', dm({})],
        ['dm-meta-null', dm({ rawMeta: 'null' })],
        ['dm-meta-empty-object', dm({ rawMeta: '{}' })],
        ['dm-reply-to-empty-string', dm({ reply_to: '' })],
        ['dm-priority-next-explicit', dm({ priority: 'next' })],
        ['dm-priority-now', dm({ priority: 'now' })],
        ['dm-priority-low', dm({ priority: 'low' })],
        ['dm-reply-to', dm({ reply_to: 'msg_01HZY3N6Q8R2ZK4M7P9T0V1W2X' })],
        ['dm-other-peer', dm({ ref: BOB })],
        ['topic-broadcast-star', { kind: 'topic', ref: '*', body: 'hello' }],
        ['topic-broadcast-at-all', { kind: 'topic', ref: '@all', body: 'hello' }],
        ['topic-group', { kind: 'topic', ref: '@backend', body: 'hello' }],
        ['topic-group-unicode', { kind: 'topic', ref: '@équipe-日本', body: 'hello' }],
        ['topic-id', { kind: 'topic', ref: '#7c1f0e2a-deploys', body: 'hello' }],
        ['topic-group-reply-now', { kind: 'topic', ref: '@backend', reply_to: 'msg_01HZY3N6Q8R2ZK4M7P9T0V1W2X',
                                    priority: 'now', body: 'ack' }],
        ['meta-flat', dm({ rawMeta: '{"source":"cli","attempt":2,"urgent":true,"tag":null}' })],
        ['meta-key-order', dm({ rawMeta: '{"b":1,"a":2,"A":3,"aa":4,"":5,"10":6,"1":7,"111":8}' })],
        ['meta-key-order-utf16', dm({
                rawMeta: '{"\\ufb01":"fi ligature","\\ud83d\\ude00":"grinning face","\\u00e9":"e acute",' +
                        '"z":"z","\\ue000":"private use","\\u20ac":"euro","\\ud800\\udc00":"linear b"}',
        })],
        ['meta-numbers', dm({
                rawMeta: '{"n":[1.50,1E2,-0.0,0,-0,1e21,1e20,1e-7,1e-6,1.5e-7,123456789012345680000,5e-324,' +
                        '1.7976931348623157e308,0.1,0.30000000000000004,9007199254740993,333333333.33333329,' +
                        '2e-3,1E30,-1.5e-7,18446744073709551616,-9223372036854775808,4.5,0.000000000000000000000000001]}',
        })],
        ['meta-nested', dm({
                rawMeta: '{ "z": {"y": {"x": [ {"b": 2, "a": 1}, [], {}, [{"d": [true, false, null]}] ]}},\n' +
                        '  "a": {"list": [3, 2, 1], "empty": {}, "s": "tab\\there", "10": {"1": 1, "": 0}} }',
        })],
        ['meta-string-escapes', dm({
                rawMeta: '{"s":"quote\\" backslash\\\\ slash\\/ nl\\n cr\\r tab\\t bs\\b ff\\f nul\\u0000 ' +
                        'us\\u001f del\\u007f ls\\u2028 euro\\u20ac <\\/script>"}',
        })],
        ['body-empty', dm({ body: '' })],
        ['body-bmp', dm({ body: 'héllo wörld — € 中文 日本語 Ελληνικά' })],
        ['body-astral', dm({ body: 'emoji 😀🎉 clef 𝄞 linear-b 𐀀' })],
        ['body-combining-decomposed', dm({ body: 'cafe\u0301 A\u030a' })],
        ['body-combining-precomposed', dm({ body: 'caf\u00e9 \u00c5' })],
        ['body-controls', dm({ body: 'line1\nline2\r\n\ttabbed \u0000 nul \u007f del' })],
        ['everything', {
                kind: 'dm', ref: BOB, reply_to: 'msg_01HZY3N6Q8R2ZK4M7P9T0V1W2X', priority: 'low',
                rawMeta: '{"thread":{"id":"t-42","depth":3},"labels":["ops","😀"],"score":0.5,"ok":true}',
                body: 'Deploy finished ✅ — see https://example.invalid/build/42 (ünïcödé, 𝄞)',
        }],
];

const out = [];
const rawMetas = [];
const byName = {};
for (const [name, spec] of vectors) {
        const { rawMeta, ...input } = spec;
        if (rawMeta !== undefined) {
                input.meta = JSON.parse(rawMeta);
                input.meta_placeholder = `@@META_${rawMetas.length}@@`;
                rawMetas.push(rawMeta);
        }
        const { metaJcs, hex } = fingerprint(input);
        byName[name] = hex;
        const written = { kind: input.kind, ref: input.ref };
        if (input.reply_to !== undefined)
                written.reply_to = input.reply_to;
        if (input.priority !== undefined)
                written.priority = input.priority;
        if (input.meta_placeholder !== undefined)
                written.meta = input.meta_placeholder;
        written.body = input.body;
        out.push({ name, input: written, expected_meta_jcs: metaJcs, expected_hex: hex });
}

// Equivalences the contract promises.
for (const name of ['dm-meta-null', 'dm-meta-empty-object', 'dm-reply-to-empty-string', 'dm-priority-next-explicit'])
        assert(byName[name] === byName['dm-minimal'], `${name} equals dm-minimal`);
assert(byName['body-combining-decomposed'] !== byName['body-combining-precomposed'], 'no Unicode normalization');
assert(new Set(Object.values(byName)).size === Object.keys(byName).length - 4, 'other vectors all differ');

let text = JSON.stringify(out, null, 2);
rawMetas.forEach((raw, i) => {
        text = text.replace(`"@@META_${i}@@"`, () => raw);
});
const reread = JSON.parse(text);
reread.forEach((v, i) => {
        assert(v.expected_hex === out[i].expected_hex, 'file re-reads');
        if (v.input.meta !== undefined)
                assert(fingerprint(v.input).hex === v.expected_hex, `${v.name} recomputes from the file`);
});
process.stdout.write(text + '\n');
