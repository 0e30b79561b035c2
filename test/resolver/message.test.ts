// resolver/message.ts name forms: the wire-form key back to presentation text (RFC 1035 §5.1 escapes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nameKeyToText, textToNameKey } from '../../resolver/message.ts';

test('nameKeyToText: plain labels copied whole, the root, and escapes for dots, backslashes and non-printing octets', () => {
  assert.equal(nameKeyToText('\x00'), '.');
  assert.equal(nameKeyToText(textToNameKey('www.Example.COM.')), 'www.example.com.');
  assert.equal(nameKeyToText(textToNameKey('r0m1795830988098x123456.bench')), 'r0m1795830988098x123456.bench.');
  assert.equal(nameKeyToText('\x03a.b\x01\\\x00'), 'a\\.b.\\\\.');
  assert.equal(nameKeyToText('\x02a\x00\x02\xffz\x00'), 'a\\000.\\255z.');
  assert.equal(nameKeyToText('\x01 \x03~x!\x00'), '\\032.~x!.');
});
