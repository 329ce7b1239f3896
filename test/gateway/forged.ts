/** Every spelling of our authserv-id a forger may use (RFC 8601 §2.2 with RFC 5322 CFWS). */
export const FORGED_IDS = [
  'mx.beta.test',
  'MX.BETA.TEST',
  'mx.beta.test.',
  '(c) mx.beta.test',
  '((nested)) mx.beta.test',
  '(a (b \\) c) d)mx.beta.test',
  '"mx.beta.test"',
  '"Mx.Beta.Test."',
  '\r\n\tmx.beta.test',
  '(folded\r\n comment)\r\n mx.beta.test.',
  'mx.beta.test 1',
  'ｍｘ.beta.test',
  'mx.beta.test\u3002',
  'mx.beta.test\uff0e',
];
