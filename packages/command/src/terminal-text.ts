/**
 * Text from outside (job names, commands, tags, control paths, file names)
 * made safe to print for people. A terminal executes escape sequences it is
 * sent: a job named `\x1b]0;…\x07` or `\x1b[2J` could retitle the window, clear
 * the screen, hide lines or fake output. Every control character is shown as
 * a visible escape (`\x1b`, `\n`), as are the Unicode controls that reorder
 * or hide text (bidi overrides, zero-width marks). `--json` output is never
 * passed through here: JSON.stringify already escapes C0 controls.
 */

const NAMED: Readonly<Record<number, string>> = { 10: "\\n", 13: "\\r", 9: "\\t" };

/**
 * C0 controls, DEL and C1 controls; the Arabic letter mark, zero-width marks,
 * line/paragraph separators, bidi embeddings, overrides and isolates, word
 * joiners and the BOM: characters that act on the terminal or hide and
 * reorder text instead of showing.
 */
function isInvisible(code: number): boolean {
  return (
    code <= 0x1f ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x061c ||
    (code >= 0x200b && code <= 0x200f) ||
    (code >= 0x2028 && code <= 0x202e) ||
    (code >= 0x2060 && code <= 0x2069) ||
    code === 0xfeff
  );
}

function shown(code: number): string {
  const named = NAMED[code];
  if (named !== undefined) return named;
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

function made(text: string, keepNewlines: boolean): string {
  let out = "";
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (!isInvisible(code) || (keepNewlines && code === 0x0a)) continue;
    out += text.slice(from, i) + shown(code);
    from = i + 1;
  }
  return from === 0 ? text : out + text.slice(from);
}

/** `text` for one line of human output: every control character escaped (newlines too). */
export function terminalSafe(text: string): string {
  return made(text, false);
}

/** `text` for a multi-line message: like terminalSafe, but newlines stay line breaks. */
export function terminalSafeLines(text: string): string {
  return made(text, true);
}
