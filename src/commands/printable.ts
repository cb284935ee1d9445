// Mail text on a terminal. Mail is attacker-controlled: a subject may carry ESC sequences that
// would drive the terminal, a newline that forges a result line of its own, or bidi controls that
// make one sender's address read as another's (CVE-2021-42574, "Trojan Source"). Line breaks and
// tabs become spaces; every other control character and every bidi control becomes U+FFFD. (JSON
// output escapes control characters itself; bidi controls there are the reader's concern.)
const LINE_BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]+/g;
const CONTROLS = /[\u0000-\u0008\u000e-\u001f\u007f-\u0084\u0086-\u009f]/g;
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

export function printable(s: string): string {
  return s.replace(LINE_BREAKS, " ").replace(CONTROLS, "\ufffd").replace(BIDI, "\ufffd");
}
