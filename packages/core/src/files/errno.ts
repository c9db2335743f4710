/** Narrowing for Node's system errors, which carry their errno name in `code`. */
export function isErrno(error: unknown, ...codes: string[]): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return code !== undefined && codes.includes(code);
}
